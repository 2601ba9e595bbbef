"""Benchmark: the soak — signed gateway events at a fixed rate through the Procfile's processes for up to an hour,
with the memory of every process and the backlog sampled all along.

The processes as the Procfile starts them: gunicorn (gunicorn.conf.py, WEB_CONCURRENCY's default), 2 × `rq worker
--with-scheduler --worker-class runtime.Worker`, `rq cron jobs/cron.py` (the tick every minute), and an SMTP server
(aiosmtpd) receiving the emails. Events go out at --rate webhooks/s until --events or --minutes, whichever comes
first. Card orders are made a chunk (a minute of events) ahead, each with its first attempt in flight, and every
event answers one of them: per ten, six charges succeed (the installment paid), three fail (attempt 2 scheduled,
the customer and the seller emailed), one is a hard decline (the plan interrupted, both emailed); one webhook in fifty
is delivered again later, as gateways do (answered "duplicate", applied once).

Every --sample-seconds: the RSS of each process (the gunicorn master and workers, each RQ worker and its scheduler,
the cron process, Redis, the PostgreSQL backends serving the product, the bench itself), and the backlog (events
received and not applied, emails not sent, jobs queued). Writes bench/SOAK.md (memory at the end of the warm-up
against the end and the peak, the backlog's trend, events applied/s, CPU per event), bench/soak.json (every
sample; `--report bench/soak.json` writes SOAK.md and the plot again from it) and bench/soak.png (matplotlib, in
the plots' virtualenv var/bench-venv).

Needs PostgreSQL and Redis; empties its own database (tranche_soak, created if missing) and Redis database (12).
The bench holds a chunk or two of events and the samples, nothing else that grows: it can run a million unattended.

    make bench-soak       # or: .venv/bin/python bench/soak.py --rate 40 --minutes 35
"""

import argparse
import datetime as dt
import json
import os
import platform
import queue as queues
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhooks import (  # noqa: E402
    BIN,
    VAR,
    CpuMeter,
    Inbox,
    Load,
    bench_seller,
    ensure_database,
    free_port,
    orders_in_flight,
    plotting_python,
    reset,
    signed,
    start,
    stop,
    wait_until_up,
)

# Per ten orders: what the gateway reports of its first charge (None: it succeeded). See the docstring.
OUTCOMES = (None,) * 6 + ("insufficient_funds",) * 3 + ("lost_card",)
REDELIVERED_EVERY = 50
BENCH_APPLICATION = "tranche-soak-bench"  # the bench's own PostgreSQL connections, told apart from the product's
GROUPS = ("web (gunicorn)", "RQ workers", "tick (rq cron)", "Redis", "PostgreSQL backends", "bench")
PG_ROW = "PostgreSQL: the product's backends, summed"
TRANCHE = ["web (gunicorn)", "RQ workers", "tick (rq cron)", "PostgreSQL", "Redis"]


def outcome(n: int) -> str | None:
    return OUTCOMES[n % len(OUTCOMES)]


class Tally(Inbox):
    """The SMTP server's handler, counting the messages only: a million arrivals kept would grow the bench itself."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    async def handle_DATA(self, server, session, envelope):
        self.received += len(envelope.rcpt_tos)
        return "250 OK"


# --- what is sampled


def memory(pid: int) -> tuple[int, int] | None:
    """VmRSS and RssAnon (the process's own pages, without the shared ones it touched) in kB; None once ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])


def watched(roots: dict[int, tuple[str, str, str]], bench_backends: set[int], database: str) -> dict[int, tuple]:
    """Every process to sample, by pid: (group, name). `roots` maps each process started here to its group, its
    name and its children's (gunicorn's workers, an RQ worker's scheduler); then Redis, and the PostgreSQL backends
    of `database` but the bench's own."""
    parents, redis, backends = {}, [], []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        pid = int(entry)
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if args.startswith("redis-server"):
            redis.append(pid)
        elif args.startswith("postgres: ") and f" {database} " in args and pid not in bench_backends:
            backends.append(pid)
    found: dict[int, tuple[str, str]] = {os.getpid(): ("bench", "bench: load generator, SMTP, sampler")}
    for root, (group, name, _children) in roots.items():
        if root in parents:
            found[root] = (group, name)
    for root, (group, _name, children) in roots.items():
        for k, pid in enumerate(sorted(pid for pid, parent in parents.items() if parent == root), 1):
            found[pid] = (group, children.format(k=k))
    found.update({pid: ("Redis", "redis-server (the machine's)") for pid in redis})
    found.update({pid: ("PostgreSQL backends", f"PostgreSQL backend {pid}") for pid in backends})
    return found


class Sampler(threading.Thread):
    """Every `seconds`: each watched process's memory and the backlog, appended to `samples`."""

    def __init__(self, seconds: float, roots: dict, database_url: str, inbox: Tally, meter: CpuMeter):
        super().__init__(daemon=True)
        self.seconds, self.roots, self.inbox, self.meter = seconds, roots, inbox, meter
        self.started = time.monotonic()
        # The CPU readings of the first sample and of the latest: CPU per event over the run, nothing kept per sample.
        self.first_cpu: dict | None = None
        self.latest_cpu: dict | None = None
        self.samples: list[dict] = []
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.database_url, self.database = database_url, database_url.rsplit("/", 1)[1]
        self.stored, self.last_id = 0, 0

    def run(self) -> None:
        import psycopg

        from runtime import queue

        try:
            with psycopg.connect(f"{self.database_url}?application_name={BENCH_APPLICATION}", autocommit=True) as conn:
                while not self.finished.wait(self.seconds - (time.monotonic() - self.started) % self.seconds):
                    self.samples.append(self.sample(conn, queue()))
                    self.latest_cpu = self.meter.read()
                    self.first_cpu = self.first_cpu or self.latest_cpu
        except BaseException as error:  # seen by the main thread, which stops the run
            self.error = error

    def sample(self, conn, work_queue) -> dict:
        def count(sql: str, *params) -> int:
            return conn.execute(sql, params).fetchone()[0]

        # Counted on from the last sample by id (the primary key): a count of the whole table would read it whole.
        new, top = conn.execute(
            "SELECT count(*), coalesce(max(id), 0) FROM gateway_event WHERE id > %s", (self.last_id,)
        ).fetchone()
        self.stored, self.last_id = self.stored + new, max(self.last_id, top)
        received = count("SELECT count(*) FROM gateway_event WHERE status = 'received'")
        failed = count("SELECT count(*) FROM gateway_event WHERE status = 'failed'")
        bench = {
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (BENCH_APPLICATION,)
            )
        }
        rss, anon, groups = {}, {}, {}
        for pid, (group, name) in watched(self.roots, bench, self.database).items():
            read = memory(pid)
            if read:
                (rss[name], anon[name]), groups[name] = read, group
        redis = work_queue.connection
        return {
            "t": time.monotonic() - self.started,
            "rss_kb": rss,
            "anon_kb": anon,
            "groups": groups,
            "stored": self.stored,
            "received": received,
            "failed": failed,
            "applied": self.stored - received - failed,
            "outbox_unsent": count("SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
            "emails_received": self.inbox.received,
            "queued": work_queue.count,
            "scheduled": work_queue.scheduled_job_registry.get_job_count(cleanup=False),
            "failed_jobs": work_queue.failed_job_registry.get_job_count(cleanup=False),
            "redis_keys": redis.dbsize(),
        }


# --- the run


class Autovacuum(threading.Thread):
    """PostgreSQL's autovacuum, when the server's is off (this machine's is, for the tests' speed): VACUUM (ANALYZE)
    of the database every `seconds`. Without it the tables are never analyzed and the dead rows the claims leave
    (every installment, attempt, event and message is updated) fill the partial indexes, so the tick's queries,
    planned for empty tables, read on through them: by 17 minutes one of them took 96 s."""

    def __init__(self, database_url: str, seconds: float, done: threading.Event):
        super().__init__(daemon=True)
        self.database_url, self.seconds, self.done = database_url, seconds, done
        self.runs, self.spent, self.needed = 0, 0.0, False

    def run(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.database_url}?application_name={BENCH_APPLICATION}", autocommit=True) as conn:
            self.needed = conn.execute("SHOW autovacuum").fetchone()[0] == "off"
            while self.needed and not self.done.wait(self.seconds):
                started = time.monotonic()
                conn.execute("VACUUM (ANALYZE)")
                self.runs, self.spent = self.runs + 1, self.spent + time.monotonic() - started


def make_orders(args, out: queues.Queue, done: threading.Event) -> None:
    """Make the orders a chunk ahead of the load, in chunks of a --chunk-seconds of events: `out` holds one chunk
    made and waiting, then None at the end (or the error that stopped it)."""
    from models import db
    from runtime import utcnow

    size = max(1, round(args.rate * args.chunk_seconds))
    try:
        with db.connection_context():
            seller, product = bench_seller(utcnow())
            for first in range(0, args.events, size):
                numbers = range(first, min(first + size, args.events))
                events = orders_in_flight(seller, product, numbers, outcome, utcnow())
                while not done.is_set():
                    try:
                        out.put(events, timeout=1)
                        break
                    except queues.Full:
                        continue
                if done.is_set():
                    return
        out.put(None)
    except BaseException as error:  # the main thread raises it
        out.put(error)


def final_counts() -> dict:
    """The events by what applying them did, and the messages of the outbox, once the run is over."""
    from models import Outbox, db

    with db.connection_context():
        # The note without its dates and ids: "attempt 1 failed: attempt 2 due …", "installment 1 paid".
        events = db.execute_sql(
            r"SELECT status, regexp_replace(note, ' due .*| \(.*', ''), count(*) FROM gateway_event GROUP BY 1, 2"
        )
        return {
            "events": [list(row) for row in events],
            "outbox": Outbox.select().count(),
            "outbox_sent": Outbox.select().where(Outbox.sent_at.is_null(False)).count(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=40, help="webhooks per second, redeliveries included")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in all (or --minutes, first to end)")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--chunk-seconds", type=float, default=60, help="orders made ahead, this many seconds' worth")
    parser.add_argument("--sample-seconds", type=float, default=5)
    parser.add_argument("--warm-up", type=float, default=0.1, help="the share of the run memory is measured from")
    parser.add_argument("--drain-seconds", type=float, default=180, help="wait at most this long for the backlog")
    parser.add_argument("--vacuum-seconds", type=float, default=60, help="VACUUM this often if autovacuum is off")
    parser.add_argument("--rq-workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per load generator process")
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/tranche_soak")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--output", default=str(ROOT / "bench" / "SOAK.md"))
    parser.add_argument("--report", metavar="JSON", help="no run: the report and the plot of a run's soak.json")
    parser.add_argument("--plot", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot:
        plot(json.loads(Path(args.plot[0]).read_text()), Path(args.plot[1]))
        return
    if args.report:
        write_report(Path(args.report), Path(args.output))
        return

    VAR.mkdir(parents=True, exist_ok=True)
    web_port, smtp_port = free_port(), free_port()
    os.environ.pop("WEB_CONCURRENCY", None)  # gunicorn.conf.py's default, as in production
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        PUBLIC_URL=f"http://127.0.0.1:{web_port}",
        PORT=str(web_port),
    )
    from aiosmtpd.controller import Controller

    from config import worker_nice
    from models import open_database

    ensure_database(args.database_url)
    # The bench's own connections named, so that the sampler counts only the product's backends.
    open_database(f"{args.database_url}?application_name={BENCH_APPLICATION}")
    reset()
    database = args.database_url.rsplit("/", 1)[1]
    meter = CpuMeter(database)
    inbox = Tally()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    made: queues.Queue = queues.Queue(maxsize=1)
    done = threading.Event()
    autovacuum = Autovacuum(args.database_url, args.vacuum_seconds, done)
    autovacuum.start()
    maker = threading.Thread(target=make_orders, args=(args, made, done), daemon=True)
    maker.start()
    print(f"making the first {args.chunk_seconds:.0f} s of orders …", flush=True)
    first = made.get()
    if isinstance(first, BaseException):
        raise first

    # The Procfile's processes, as it starts them; and what the sampler calls them.
    rq = str(BIN / "rq")
    procfile: list[tuple[list[str], str, tuple[str, str, str]]] = [
        (
            [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "app:create_app()"],
            "soak-web.log",
            ("web (gunicorn)", "gunicorn master", "gunicorn worker {k}"),
        ),
        *(
            (
                [
                    *("nice", "-n", str(worker_nice(args.database_url)), rq),  # as `make run` starts them
                    "worker",
                    "--with-scheduler",
                    "--worker-class",
                    "runtime.Worker",
                    "--url",
                    args.redis_url,
                    *("tranche-slack", "tranche"),
                ],
                f"soak-worker-{i}.log",
                ("RQ workers", f"RQ worker {i}", f"RQ worker {i}'s scheduler"),
            )
            for i in range(1, args.rq_workers + 1)
        ),
        (
            [rq, "cron", "--url", args.redis_url, "jobs/cron.py"],
            "soak-cron.log",
            ("tick (rq cron)", "rq cron", "rq cron's child {k}"),
        ),
    ]
    processes, roots = [], {}
    answers: dict[str, int] = {}
    client_cpu = 0.0
    try:
        for command, log, names in procfile:
            processes.append(start(command, log))
            roots[processes[-1].pid] = names
            meter.roots[processes[-1].pid] = names[0]
        wait_until_up(web_port)
        sampler = Sampler(args.sample_seconds, roots, args.database_url, inbox, meter)
        sampler.start()
        deadline = sampler.started + args.minutes * 60
        events: list[dict] | None = first
        print(f"the soak: {args.rate:g} webhooks/s, {args.events:,} events or {args.minutes:g} minutes …", flush=True)
        while events is not None and time.monotonic() < deadline:
            requests = signed(events)
            requests += requests[::REDELIVERED_EVERY]
            # Cut at the deadline: the orders of a chunk cut short are never answered, and do not count.
            sent = Load(web_port, args.clients, args.threads, deadline - time.monotonic()).run(requests, rate=args.rate)
            client_cpu += sent["client_cpu"]
            for answer, n in sent["answers"].items():
                answers[str(answer)] = answers.get(str(answer), 0) + n
            if sampler.error:
                raise sampler.error
            last = sampler.samples[-1] if sampler.samples else {}
            print(
                f"  {last.get('t', 0) / 60:.1f} min: {sum(answers.values()):,} webhooks sent, "
                f"{last.get('applied', 0):,} applied, {last.get('received', 0)} waiting, "
                f"{last.get('outbox_unsent', 0)} emails unsent",
                flush=True,
            )
            events = made.get()
            if isinstance(events, BaseException):
                raise events
        done.set()
        load_ended, load_samples, cpu_ended = time.monotonic(), len(sampler.samples), sampler.latest_cpu
        print("draining the backlog …", flush=True)
        while time.monotonic() - load_ended < args.drain_seconds:
            time.sleep(args.sample_seconds)
            last = sampler.samples[-1]
            if last["t"] > load_ended - sampler.started and not (last["received"] or last["outbox_unsent"]):
                break
        drained = time.monotonic() - load_ended
        sampler.finished.set()
        sampler.join()
    finally:
        done.set()
        stop(processes)
        smtp.stop()
    summary = {
        "args": vars(args),
        "answers": answers,
        "load_seconds": load_ended - sampler.started,
        "load_samples": load_samples,
        "drained_seconds": drained,
        "emails_received": inbox.received,
        "vacuum": {"by_bench": autovacuum.needed, "runs": autovacuum.runs, "seconds": autovacuum.spent},
        "cpu": meter.used(sampler.first_cpu, cpu_ended, client_cpu),
        "cpu_seconds": cpu_ended["at"] - sampler.first_cpu["at"],
        **final_counts(),
    }
    json_path = ROOT / "bench" / "soak.json"
    json_path.write_text(json.dumps({"summary": summary, "samples": sampler.samples}, separators=(",", ":")))
    write_report(json_path, Path(args.output))


def write_report(json_path: Path, output: Path) -> None:
    table = report(json.loads(json_path.read_text()))
    output.write_text(table)
    print(table)
    png = json_path.with_suffix(".png")
    subprocess.run([str(plotting_python()), __file__, "--plot", str(json_path), str(png)], check=True)


# --- the report


def _rows(sample: dict, key: str) -> dict[str, int]:
    """A sample's memory (`key`: rss_kb or anon_kb) per process, the PostgreSQL backends summed into one row."""
    rows: dict[str, int] = {}
    for name, kb in sample[key].items():
        pg = sample["groups"][name] == "PostgreSQL backends"
        label = PG_ROW if pg else name
        rows[label] = rows.get(label, 0) + kb
    return rows


def _slope_per_hour(samples: list[dict], key: str) -> float:
    """The least-squares trend of `key` over `samples`, per hour."""
    ts, ys = [s["t"] for s in samples], [s[key] for s in samples]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    spread = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / spread * 3600 if spread else 0.0


def _change(before: float | None, after: float | None) -> str:
    return f"{(after - before) / before:+.1%}" if before and after is not None else "—"


def report(data: dict) -> str:
    summary, samples = data["summary"], data["samples"]
    args = summary["args"]
    load = samples[: summary["load_samples"]]
    warm_t = summary["load_seconds"] * args["warm_up"]
    after = [s for s in load if s["t"] >= warm_t]
    warm, end, last = after[0], load[-1], samples[-1]
    applied = end["applied"] - load[0]["applied"]
    rate = applied / (end["t"] - load[0]["t"])
    webhooks = sum(summary["answers"].values())
    cores = os.cpu_count() or 1
    lines = [
        f"Machine: {cores} cores, {platform.python_implementation()} {platform.python_version()}, PostgreSQL and Redis "
        f"on loopback, shared with other work (the CPU it took is below). Run on {dt.datetime.now(dt.UTC):%Y-%m-%d}:",
        "",
        "    .venv/bin/python bench/soak.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items() if k in ("rate", "events", "minutes")),
        "",
        "The Procfile's processes (gunicorn with WEB_CONCURRENCY's default 2 workers, "
        f"{args['rq_workers']} × `rq worker --with-scheduler --worker-class runtime.Worker`, `rq cron jobs/cron.py` "
        "ticking every minute) and an SMTP "
        f"server. {webhooks:,} signed webhooks sent at {args['rate']:g}/s over {summary['load_seconds'] / 60:.1f} "
        f"minutes ({webhooks / summary['load_seconds']:.1f}/s achieved; answers: "
        + ", ".join(f"{n:,} × {a}" for a, n in summary["answers"].items())
        + f"), {end['stored']:,} events stored; memory sampled every {args['sample_seconds']:g} s, the first "
        f"{args['warm_up']:.0%} ({warm_t / 60:.1f} min) a warm-up. "
        + (
            f"The server's autovacuum is off: the bench ran `VACUUM (ANALYZE)` every {args['vacuum_seconds']:g} s in "
            f"its stead ({summary['vacuum']['runs']} times, {summary['vacuum']['seconds']:.0f} s in all)."
            if summary["vacuum"]["by_bench"]
            else "The server's autovacuum ran."
        ),
        "",
        f"**Events applied: {applied:,} in {(end['t'] - load[0]['t']) / 60:.1f} min, {rate:.1f}/s.** A million at "
        f"that rate would take {1_000_000 / rate / 3600:.1f} hours on this machine.",
        "",
        "### Memory (RSS, MB) at the end of the warm-up, at the end of the load, and its peak in between",
        "",
        "| process | warm-up end | end | peak | end vs warm-up | peak vs warm-up "
        "| own pages (RssAnon): end vs warm-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rss_warm, rss_end, anon_warm, anon_end = (
        _rows(warm, "rss_kb"), _rows(end, "rss_kb"), _rows(warm, "anon_kb"), _rows(end, "anon_kb")
    )  # fmt: skip
    peaks: dict[str, int] = {}
    anon_peaks: dict[str, int] = {}
    for sample in after:
        for name, kb in _rows(sample, "rss_kb").items():
            peaks[name] = max(peaks.get(name, 0), kb)
        for name, kb in _rows(sample, "anon_kb").items():
            anon_peaks[name] = max(anon_peaks.get(name, 0), kb)
    for name in sorted(set(rss_warm) | set(rss_end), key=lambda n: (n.startswith(("redis", "PostgreSQL", "bench")), n)):
        w, e, p = rss_warm.get(name), rss_end.get(name), peaks.get(name)
        mb = [f"{v / 1024:.1f}" if v is not None else "—" for v in (w, e, p)]
        lines.append(
            f"| {name} | {' | '.join(mb)} | {_change(w, e)} | {_change(w, p)} | "
            f"{_change(anon_warm.get(name), anon_end.get(name))} |"
        )
    pg = [sum(1 for n in s["groups"].values() if n == "PostgreSQL backends") for s in (warm, end)]

    def growth(warmed: dict[str, int], ended: dict[str, int], peak: dict[str, int], name: str) -> float:
        return max(ended.get(name, 0), peak.get(name, 0)) / warmed[name] - 1 if warmed.get(name) else float("inf")

    # Tranche's own processes by their RSS; PostgreSQL's backends by their own pages (see below).
    ours = [n for n in rss_warm if end["groups"].get(n) in ("web (gunicorn)", "RQ workers", "tick (rq cron)")]
    grown = {n: growth(rss_warm, rss_end, peaks, n) for n in ours}
    grown[PG_ROW] = growth(anon_warm, anon_end, anon_peaks, PG_ROW)
    worst = max(grown, key=grown.__getitem__)
    outside = [n for n, g in grown.items() if g > 0.10]
    verdict = (
        f"Outside 10 % of the warm-up: {', '.join(outside)}" if outside else "Every process of Tranche within 10 %"
    )
    lines += [
        "",
        f"**{verdict}** of its memory at the end of the warm-up, at the end and at its peak (the most: {worst}, "
        f"{grown[worst]:+.1%}; PostgreSQL's backends by their own pages).",
        "",
        f"PostgreSQL backends of the product: {pg[0]} at the end of the warm-up, {pg[1]} at the end (the pools' "
        "connections). A backend's RSS counts the pages of PostgreSQL's shared buffers it has read so far, which grows "
        "up to shared_buffers as the tables grow: its own pages (RssAnon) are what would show a leak. Redis is the "
        "machine's server, shared with other work on other databases.",
        "",
        "### Backlog",
        "",
        "| waiting | warm-up end | end of the load | max | trend after the warm-up (per hour) | after the drain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    backlog = (
        ("received", "gateway events received, not applied"),
        ("failed", "gateway events failed (to be retried)"),
        ("outbox_unsent", "outbox messages not sent"),
        ("queued", "RQ jobs queued"),
        ("scheduled", "RQ jobs scheduled"),
        ("failed_jobs", "RQ jobs failed"),
        ("redis_keys", "keys in the Redis database"),
    )
    for key, label in backlog:
        lines.append(
            f"| {label} | {warm[key]:,} | {end[key]:,} | {max(s[key] for s in after):,} | "
            f"{_slope_per_hour(after, key):+,.0f} | {last[key]:,} |"
        )
    lines += [
        "",
        f"After the last webhook the backlog drained in {summary['drained_seconds']:.0f} s. Outbox: "
        f"{summary['outbox']:,} messages written, {summary['outbox_sent']:,} sent; the SMTP server received "
        f"{summary['emails_received']:,}.",
        "",
        "### What applying the events did",
        "",
        "| status | what | events | share |",
        "|---|---|---:|---:|",
    ]
    total = sum(n for _status, _kind, n in summary["events"]) or 1
    for status, kind, n in sorted(summary["events"], key=lambda e: -e[2]):
        lines.append(f"| {status} | {kind or ''} | {n:,} | {n / total:.1%} |")
    by_status: dict[str, int] = {}
    for status, _kind, n in summary["events"]:
        by_status[status] = by_status.get(status, 0) + n
    lines += ["", "By status: " + ", ".join(f"{s} {n / total:.1%}" for s, n in sorted(by_status.items())) + "."]
    cpu = summary["cpu"]
    seconds = summary["cpu_seconds"]

    def ms(groups: list[str]) -> float:
        return sum(cpu.get(g, 0.0) for g in groups) * seconds / max(applied, 1) * 1000

    lines += [
        "",
        "### CPU per event applied (ms, over the whole load, from /proc)",
        "",
        "| " + " | ".join(TRANCHE) + " | Tranche in all | bench (load, SMTP, orders made ahead) | other work (cores) "
        "| processes ended meanwhile (cores) |",
        "|" + "---:|" * (len(TRANCHE) + 4),
        "| "
        + " | ".join(f"{ms([g]):.2f}" for g in TRANCHE)
        + f" | {ms(TRANCHE):.2f} | {ms([CpuMeter.BENCH]):.2f} | {cpu.get(CpuMeter.OTHERS, 0.0):.2f} "
        f"| {cpu.get(CpuMeter.SHORT_LIVED, 0.0):.2f} |",
        "",
        "PostgreSQL's column includes the backends of the bench's own connections, which make the orders ahead (and "
        "vacuum, when the bench does).",
    ]
    return "\n".join(lines) + "\n"


def plot(data: dict, path: Path) -> None:
    """RSS per process over time, and the backlog, in the plots' virtualenv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, samples = data["summary"], data["samples"]
    minutes = [s["t"] / 60 for s in samples]
    load_end = summary["load_seconds"] / 60
    warm_t = summary["load_seconds"] * summary["args"]["warm_up"]
    warm = next(s for s in samples if s["t"] >= warm_t)
    figure, (rss, change, backlog) = plt.subplots(3, 1, figsize=(11, 11), sharex=True)
    colours = dict(zip(GROUPS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    names: dict[str, str] = {PG_ROW: "PostgreSQL backends"}
    for sample in samples:
        names.update({n: g for n, g in sample["groups"].items() if g != "PostgreSQL backends"})
    labelled = set()
    for name, group in names.items():
        # PostgreSQL's backends by their own pages in the change: their RSS grows with the shared buffers they read.
        own = "anon_kb" if name == PG_ROW else "rss_kb"
        start = _rows(warm, own).get(name)
        values = [_rows(s, "rss_kb").get(name, float("nan")) / 1024 for s in samples]
        label = None if group in labelled else group
        labelled.add(group)
        rss.plot(minutes, values, color=colours[group], label=label, linewidth=1)
        if start:
            ratios = [(_rows(s, own).get(name, float("nan")) / start - 1) * 100 for s in samples]
            change.plot(minutes, ratios, color=colours[group], linewidth=1)
    rss.set(ylabel="RSS (MB)", title="memory of every process (PostgreSQL's backends summed)")
    change.axhspan(-10, 10, color="green", alpha=0.08)
    change.set(ylabel="% of the warm-up's", title="memory against the end of the warm-up (PostgreSQL: own pages)")
    for key, label in (
        ("received", "events received, not applied"),
        ("outbox_unsent", "outbox messages not sent"),
        ("queued", "RQ jobs queued"),
    ):
        backlog.plot(minutes, [s[key] for s in samples], label=label, linewidth=1)
    backlog.set(xlabel="minutes", ylabel="waiting", title="backlog")
    for axes in (rss, change, backlog):
        axes.axvline(warm_t / 60, color="grey", linestyle=":", linewidth=1)
        axes.axvline(load_end, color="grey", linestyle="--", linewidth=1)
        axes.grid(True, alpha=0.3)
    for axes in (rss, backlog):
        axes.legend(loc="upper left", fontsize="small")
    figure.suptitle(f"Tranche soak at {summary['args']['rate']:g} webhooks/s (bench/soak.py): warm-up ⋯, load end --")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
