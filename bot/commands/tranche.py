"""/tranche help, and the usage for any command no other module took: never a stack trace."""

import re

from bot.blocks import usage


def register(app) -> None:
    app.command("/tranche")(answer_help)
    # Registered last: a command Slack sends that nothing above handles still gets the usage.
    app.command(re.compile(r"^/"))(answer_unknown)


def answer_help(ack, command) -> None:
    text = (command.get("text") or "").strip()
    ack(text=usage(None if text in ("", "help") else f"I don't know `/tranche {text}`."))


def answer_unknown(ack, command) -> None:
    ack(text=usage(f"I don't know `{command['command']}`."))
