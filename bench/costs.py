"""Benchmark: what the web app and a worker spend on each event, in one process, step by step: CPU time and statements.

The figures each change to the workers and to the webhook is measured by (README, Benchmarks). In this process, on
PostgreSQL:
  1. N card orders whose first attempt is in flight (as bench/webhooks.py makes them) and, for each, its gateway
     event, signed and accepted by the web app called through WSGI as gunicorn calls it, its log line written to
     var/bench/costs.log: `payment.failed` (attempt 2 scheduled, the customer and the seller emailed), then, on as many
     other orders, `payment.succeeded` (the installment paid). Without a server, a load generator or a core shared
     with them, the web app's own CPU a webhook reads steadier here than in bench/webhooks.py;
  2. for each kind, the events applied as the worker applies them (jobs.work.process_received_events);
  3. the emails of the failures sent to an SMTP server in a process of its own (jobs.work.send_due_messages), then
     rendered, flattened and recorded once more each step alone (emails.render, bytes(), the UPDATE).
Prints, per step, CPU milliseconds of this process per event (or per email) and statements per event.

Needs PostgreSQL and Redis; empties its own database (tranche_costs, created if missing) and Redis database (13).

    .venv/bin/python bench/costs.py --events 2000
"""

import argparse
import functools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.webhooks import VAR, bench_seller, ensure_database, free_port, orders_in_flight, reset, signed  # noqa: E402


class Statements:
    """Counts the statements the process's database runs."""

    def __init__(self, database) -> None:
        self.count = 0
        execute = database.execute_sql

        def counted(sql, params=None, *args, **kwargs):
            self.count += 1
            return execute(sql, params, *args, **kwargs)

        database.execute_sql = counted


def measure(name: str, per: int, step: Callable[[], object], statements: Statements) -> None:
    before, cpu = statements.count, time.process_time()
    step()
    spent = time.process_time() - cpu
    print(f"| {name} | {spent / per * 1000:.2f} | {(statements.count - before) / per:.1f} |", flush=True)


def drain(job: Callable[[], object]) -> None:
    """Run `job` as the workers would, until it has queued no next one: each job works one claimed batch, and queues
    the next when its claim came back full."""
    from runtime import redis_connection

    queued = redis_connection().keys("rq:job:*")
    while True:
        job()
        fresh = set(redis_connection().keys("rq:job:*")) - set(queued)
        if not fresh:
            return
        queued = [*queued, *fresh]


def accept(app, requests: list[dict]) -> None:
    """Each request through the app, as a WSGI server hands it over; every one must be accepted."""
    answers = []
    for environ in requests:
        for _chunk in app(environ, lambda status, headers, exc_info=None: answers.append(status)):
            pass
    refused = [status for status in answers if not status.startswith("200")]
    if refused:
        raise RuntimeError(f"{len(refused)} webhooks refused: {refused[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events of each kind")
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/tranche_costs")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    smtp_port = free_port()
    os.environ.update(
        DATABASE_URL=args.database_url, REDIS_URL=args.redis_url, SMTP_URL=f"smtp://127.0.0.1:{smtp_port}"
    )
    from app import create_app
    from emails import render
    from jobs.work import process_received_events, send_due_messages
    from models import Outbox, db
    from runtime import configure_logging, database, settings, utcnow

    ensure_database(args.database_url)
    reset()
    now = utcnow()
    with db.connection_context():
        seller, product = bench_seller(now)
        failing = orders_in_flight(seller, product, range(args.events), lambda n: "insufficient_funds", now)
        paying = orders_in_flight(seller, product, range(args.events, 2 * args.events), lambda n: None, now)
    configure_logging("web")
    VAR.mkdir(parents=True, exist_ok=True)
    logging.getLogger().handlers[0].setStream((VAR / "costs.log").open("a"))
    app = create_app()
    statements = Statements(database().obj)
    smtp = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}", "-c", "bench.webhooks.Relay"], cwd=ROOT
    )
    try:
        time.sleep(1)
        print("| step | CPU ms | statements |\n|---|---:|---:|")
        for kind, events in (("payment.failed", failing), ("payment.succeeded", paying)):
            requests = [
                EnvironBuilder(path, method="POST", data=body, headers=headers).get_environ()
                for path, body, headers in signed(events)
            ]
            measure(
                f"accept a `{kind}` webhook, per event",
                len(events),
                functools.partial(accept, app, requests),
                statements,
            )
            measure(f"apply a `{kind}`, per event", len(events), lambda: drain(process_received_events), statements)
        with db.connection_context():
            messages = list(Outbox.select().where(Outbox.channel == Outbox.EMAIL))
        measure("send its 2 emails, per failure", len(failing), lambda: drain(send_due_messages), statements)
        emails = []
        measure(
            "render an email", len(messages), lambda: emails.extend(render(m, settings()) for m in messages), statements
        )
        measure("flatten an email", len(emails), lambda: [bytes(email) for email in emails], statements)
        with db.connection_context():
            measure(
                "record an email sent",
                len(messages),
                lambda: [Outbox.record_sent(m.id, utcnow()) for m in messages],
                statements,
            )
    finally:
        smtp.terminate()


if __name__ == "__main__":
    main()
