"""Benchmark: how fast POST /slack/events acknowledges signed slash commands under load (Slack allows 3 s).

One run, loopback only: gunicorn serves Tranche with Slack on, RQ workers run the jobs the commands queue, a
local server answers like Slack's Web API (tests/slack_api.py). The load is a mix of real commands from one
linked workspace, each with its own trigger: /order by name and by invoice number, /collections, /update-plan
with an amount, and /renew of orders whose three attempts failed (charged through the sandbox), sent at a fixed
rate (--rate; 0: each as soon as a connection is free). Reports the ack p50/p99, counted from when each command was
due, and checks that every command was answered through its response_url, once.

    .venv/bin/python bench/slack_ack.py --help
"""

import argparse
import datetime as dt
import os
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The load generator, process management and database reset of the webhook benchmark.
from bench.webhooks import BIN, VAR, Load, ensure_database, free_port, reset, start, stop, wait_until_up  # noqa: E402
from config import worker_nice  # noqa: E402

SECRET = "bench-signing-secret"
TEAM, CHANNEL = "T0BENCH", "C0BENCH"


def prepare(orders: int) -> list[tuple[str, str]]:
    """A seller linked to the workspace, `orders` active card orders and as many interrupted ones; the commands
    to send, as (command, text)."""
    from billing.workspaces import link_workspace
    from models import db
    from runtime import utcnow
    from tests import factories

    start_at = utcnow() - dt.timedelta(days=20)
    with db.atomic():
        seller = factories.seller("Bench Seller", start_at)
        link_workspace(seller, TEAM, CHANNEL, start_at)
        active = [factories.order(seller, anchor=start_at + dt.timedelta(days=30)) for _ in range(orders)]
        declined = factories.card(factories.INSUFFICIENT_FUNDS)
        failing = [factories.order(seller, payment=declined, anchor=start_at) for _ in range(orders)]
    factories.decline_the_ladder(start_at)
    commands = []
    for n, (order, stuck) in enumerate(zip(active, failing, strict=True)):
        commands += [
            ("/order", order.invoice_number),
            ("/order", "dubois" if n % 2 else "claire"),
            ("/collections", ""),
            ("/update-plan", f"{order.id} {40 + n % 50},00 €"),
            ("/renew", str(stuck.id)),
        ]
    return commands


def signed(commands: list[tuple[str, str]], response_url) -> list[tuple]:
    """Requests for POST /slack/events as Slack signs them (the signature is good for 5 minutes)."""
    from slack_sdk.signature import SignatureVerifier

    verifier, stamp = SignatureVerifier(SECRET), str(int(time.time()))
    requests = []
    for n, (name, text) in enumerate(commands):
        body = urllib.parse.urlencode(
            {
                "team_id": TEAM,
                "channel_id": CHANNEL,
                "user_id": "U0BENCH",
                "command": name,
                "text": text,
                "response_url": response_url(str(n)),
                "trigger_id": f"bench-{uuid.uuid4().hex}",
            }
        )
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": stamp,
            "x-slack-signature": verifier.generate_signature(timestamp=stamp, body=body),
        }
        requests.append(("/slack/events", body.encode(), headers))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--orders", type=int, default=200, help="active and interrupted orders each (5 commands per pair)"
    )
    parser.add_argument(
        "--web-workers", type=int, default=2, help="gunicorn worker processes (WEB_CONCURRENCY's default)"
    )
    parser.add_argument("--rq-workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument(
        "--worker-nice", type=int, help="the RQ workers' niceness (default: config.worker_nice, as `make run`)"
    )
    parser.add_argument("--rate", type=float, default=100, help="commands per second (0: as fast as answered)")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=8, help="connections per load generator process")
    parser.add_argument("--seconds", type=float, default=120, help="time limit of the load and of the answers")
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/tranche_slack_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--output", default=str(ROOT / "bench" / "SLACK_ACK.md"))
    args = parser.parse_args()
    if args.worker_nice is None:
        args.worker_nice = worker_nice(args.database_url)

    from tests.slack_api import SlackAPI

    slack = SlackAPI()
    VAR.mkdir(parents=True, exist_ok=True)
    web_port = free_port()
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        PUBLIC_URL=f"http://127.0.0.1:{web_port}",
        OUTBOX_DIR=str(VAR / "outbox"),
        WEB_CONCURRENCY=str(args.web_workers),
        PORT=str(web_port),
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_API_URL=slack.url,
    )
    from models import db
    from runtime import QUEUE, SLACK_QUEUE

    ensure_database(args.database_url.replace("+pool", ""))
    reset()
    print(f"preparing {args.orders} active and {args.orders} interrupted orders …", flush=True)
    with db.connection_context():
        commands = prepare(args.orders)
    slack.reset()

    web = start([str(BIN / "gunicorn"), "-b", f"127.0.0.1:{web_port}", "app:create_app()"], "gunicorn.log")
    # As the Procfile starts them: Slack's queue first.
    niceness = ["nice", "-n", str(args.worker_nice)] if args.worker_nice else []
    worker = [*niceness, str(BIN / "rq"), "worker", "--with-scheduler", "-w", "runtime.Worker", "-u", args.redis_url]
    workers = [start([*worker, SLACK_QUEUE, QUEUE], f"worker-{i}.log") for i in range(args.rq_workers)]
    load = Load(web_port, args.clients, args.threads, args.seconds)
    try:
        wait_until_up(web_port)
        # Each gunicorn worker builds its bolt app on its first Slack request: not what is measured.
        load.run(signed([("/tranche", "help")] * args.web_workers * 4, slack.response_url))
        print(f"{len(commands)} commands …", flush=True)
        result = load.run(signed(commands, slack.response_url), rate=args.rate or None)
        slack.wait_for("response_url", len(commands), timeout=args.seconds)
        answered = time.monotonic()
        renewals = sum(1 for name, _ in commands if name == "/renew")
        # The renewals' answers are replaced by their outcome once the gateway reported it.
        slack.wait_for("response_url", len(commands) + renewals, timeout=args.seconds)
        time.sleep(1)  # a second answer to one command would arrive now
    finally:
        stop(workers + [web])
    answers = slack.received("response_url")
    per_command = {a["path"] for a in answers if not a.get("replace_original")}
    assert result["events"] == len(commands), f"{result['events']} of {len(commands)} commands acknowledged"
    assert len(per_command) == len(commands) and len(answers) == len(commands) + renewals, "an answer missing or twice"

    table = "\n".join(
        [
            f"Machine: {os.cpu_count()} cores. gunicorn {args.web_workers} sync workers, {args.rq_workers} RQ workers"
            f"{f' at nice {args.worker_nice}' if args.worker_nice else ''}, "
            f"load from {args.clients} processes × {args.threads} connections, "
            f"{f'{args.rate:.0f} commands/s offered' if args.rate else 'each command sent once a connection is free'}; "
            "PostgreSQL and Redis on loopback.",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| commands ({', '.join(sorted({n for n, _ in commands}))}) | {len(commands)} |",
            f"| acknowledged per second | {result['rate']:.0f} |",
            f"| ack p50 | {result['p50'] * 1000:.1f} ms |",
            f"| ack p99 | {result['p99'] * 1000:.1f} ms |",
            f"| until every command was answered through its response_url | {answered - result['started']:.1f} s |",
            "",
        ]
    )
    print(table)
    Path(args.output).write_text(table)
    slack.server.shutdown()
    slack.server.server_close()


if __name__ == "__main__":
    main()
