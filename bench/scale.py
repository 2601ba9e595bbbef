"""Benchmark: the tick over 10 k, 100 k and 1 M plans with a tenth due, and their charges end to end, on PostgreSQL.

For each size given to --plans, one run, bounded in time:
  1. builds the plans in bulk (INSERT … SELECT over generate_series, not the rules one by one): per plan a customer
     and a card order of 3 monthly installments; nine in ten paid their first installment 10 days ago (its
     succeeded attempt kept) and owe the next in 20 days, one in ten owes its first now;
  2. (a) the tick, workers stopped: opening every due installment with its first attempt
     (billing.plans.start_due_installments), then the rest of jobs.work.tick (what it queues for the charges);
  3. (b) gunicorn and 2 RQ workers start: the time until every due installment is paid, i.e. charged through
     the sandbox gateway, its webhook accepted and its outcome applied (bounded by --e2e-seconds: what was done
     by then is counted), with the CPU each group of processes used meanwhile.
The ceilings are measured in the same run: pgbench (select-only) and redis-benchmark, a few seconds each. With
--explain (the largest size) every distinct query the tick and a charge claim run is shown with EXPLAIN ANALYZE on
the data as it stood before the tick. Writes bench/SCALE.md and the plot bench/scale.png (matplotlib, from
bench/requirements.txt, in a virtualenv of its own: var/bench-venv).

Needs PostgreSQL and Redis; empties its own database (bench_tick, created if missing) and Redis database (8).

    make bench-scale      # or: .venv/bin/python bench/scale.py --plans 10000 100000 --help
"""

import argparse
import datetime as dt
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhooks import (  # noqa: E402
    BIN,
    VAR,
    CpuMeter,
    ensure_database,
    free_port,
    pgbench,
    plotting_python,
    redis_benchmark,
    reset,
    start,
    stop,
    wait_until_up,
)

EXPLAINED = (
    "The tables the bench leaves empty (plan changes, gateway events, the outbox, collection cases, Slack requests) "
    "are read whole, as PostgreSQL reads any empty table; with rows it reads their indexes (`expires_at`, "
    "`next_try_at`, `sent_at`, `next_delivery_at`, `seen_at`). The charge claim's statements run after the tick was "
    "rolled back, so they find none of its attempts (rows=0): their plans show the indexes they read."
)
TRANCHE = ["web (gunicorn)", "RQ workers", "PostgreSQL", "Redis"]


def build(plans: int, now: dt.datetime) -> int:
    """`plans` card orders as described above, in a few statements; returns how many are due now."""
    from billing.sellers import create_seller
    from models import Product, db

    seller, _key = create_seller("Bench Seller", "bench@example.com", now)
    product = Product.create(seller=seller, name="Python course", notification_email="notify@example.com")
    naive = now.astimezone(dt.UTC).replace(tzinfo=None)
    values = {
        "seller": seller.id,
        "product": product.id,
        "plans": plans,
        "due": naive - dt.timedelta(minutes=1),
        "paid": naive - dt.timedelta(days=10),
    }
    anchor = "CASE WHEN n % 10 = 0 THEN %(due)s::timestamp ELSE %(paid)s::timestamp END"
    statements = [
        """INSERT INTO customer (seller_id, name, email, language, name_folded)
           SELECT %(seller)s, 'Customer ' || n, 'c' || n || '@bench.example', 'en', 'customer ' || n
           FROM generate_series(1, %(plans)s) n""",
        f"""INSERT INTO "order" (seller_id, product_id, customer_id, invoice_number, plan, installment_count,
               interval, amount, currency, anchor_at, method, card_token, card_brand, card_last4, card_exp_month,
               card_exp_year, status, created_at)
           SELECT %(seller)s, %(product)s, n, 'INV-' || n, 'installments', 3, 'monthly', 3000, 'EUR', {anchor},
               'card', 'tok_ok_bench' || n, 'visa', '4242', 12, 2030, 'active', %(paid)s
           FROM generate_series(1, %(plans)s) n""",
        f"""INSERT INTO installment (order_id, number, due_at, amount, status, paid_at)
           SELECT n, k, {anchor} + (k - 1) * interval '1 month', 3000,
               CASE WHEN n % 10 <> 0 AND k = 1 THEN 'paid' ELSE 'scheduled' END,
               CASE WHEN n % 10 <> 0 AND k = 1 THEN %(paid)s::timestamp END
           FROM generate_series(1, %(plans)s) n, generate_series(1, 3) k""",
        """INSERT INTO charge_attempt (installment_id, number, kind, idempotency_key, due_at, status, amount,
               requested_at, reference, settled_at)
           SELECT id, 1, 'automatic', 'tranche-' || order_id || '-1-automatic-1', due_at, 'succeeded', 3000,
               due_at, 'ch_bench_' || id, due_at
           FROM installment WHERE status = 'paid'""",
    ]
    with db.atomic():
        for statement in statements:
            db.execute_sql(statement.replace("%", "%%").replace("%%(", "%("), values)
    db.execute_sql("ANALYZE")
    return plans // 10


def explain_tick(now: dt.datetime) -> list[tuple[str, str]]:
    """Each distinct statement the tick and one charge claim send, with its plan (EXPLAIN ANALYZE), on the data as
    it is now: they run in a transaction rolled back, then each statement is explained in one rolled back too."""
    from billing import charging
    from jobs.work import tick
    from models import db

    sent: list[tuple[str, tuple]] = []

    class Statements(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, tuple):
                sent.append(record.msg)

    peewee_log = logging.getLogger("peewee")
    handler, level = Statements(), peewee_log.level
    peewee_log.addHandler(handler)
    peewee_log.setLevel(logging.DEBUG)
    try:
        with db.atomic() as everything:
            tick(now.isoformat())
            charging.claim_due_attempts(now)
            everything.rollback()
    finally:
        peewee_log.removeHandler(handler)
        peewee_log.setLevel(level)
    plans, seen = [], set()
    for sql, params in sent:
        shape = re.sub(r"VALUES \(.*", "VALUES …", re.sub(r"IN \((%s, )+%s\)", "IN (…)", sql))
        if shape in seen or not re.match(r"\s*(SELECT|UPDATE|INSERT|DELETE)", sql):
            continue
        seen.add(shape)
        with db.atomic() as each:
            rows = db.execute_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", params).fetchall()
            each.rollback()
        # A line of the plan may hold a batch's thousands of ids: their start says enough.
        plans.append((shape, "\n".join(row[0] if len(row[0]) < 160 else row[0][:160] + " …" for row in rows)))
    return plans


def installments_open() -> int:
    from models import Installment

    return Installment.select().where(Installment.status == Installment.OPEN).count()


def run_size(args, plans: int, meter: CpuMeter, web_port: int) -> dict:
    from billing.plans import start_due_installments
    from jobs.work import tick
    from models import db
    from runtime import redis_connection, utcnow

    reset()
    now = utcnow()
    with db.connection_context():
        started = time.monotonic()
        due = build(plans, now)
        built = time.monotonic() - started
        print(f"{plans} plans built in {built:.1f} s, {due} due", flush=True)
        plans_explained = explain_tick(now) if args.explain and plans == max(args.plans) else []
        redis_connection().flushdb()
        started = time.perf_counter()
        opened = start_due_installments(now)
        opening = time.perf_counter() - started
        tick(now.isoformat())
        ticked = time.perf_counter() - started
    assert opened == due, f"opened {opened} of {due}"
    print(f"  tick: {opened} opened in {opening:.2f} s, whole tick {ticked:.2f} s", flush=True)

    web = start([str(BIN / "gunicorn"), "-b", f"127.0.0.1:{web_port}", "-w", "2", "app:create_app()"], "web.log")
    meter.roots[web.pid] = "web (gunicorn)"
    workers: list[subprocess.Popen] = []
    try:
        wait_until_up(web_port)
        before = meter.read()
        started = time.monotonic()
        for i in range(args.rq_workers):
            worker = ["rq", "worker", "--worker-class", "runtime.Worker", "--url", args.redis_url, "tranche"]
            workers.append(start([str(BIN / worker[0]), *worker[1:]], f"scale-worker-{i}.log"))
            meter.roots[workers[-1].pid] = "RQ workers"
        with db.connection_context():
            left = due
            while left and time.monotonic() - started < args.e2e_seconds:
                time.sleep(0.5)
                left = installments_open()
        seconds = time.monotonic() - started
        cpu = meter.used(before, meter.read(), 0.0)
    finally:
        stop(workers + [web])
    charged = due - left
    print(f"  end to end: {charged} of {due} charges applied in {seconds:.1f} s", flush=True)
    return {
        "plans": plans,
        "due": due,
        "built": built,
        "opening": opening,
        "tick": ticked,
        "charged": charged,
        "e2e": seconds,
        "cpu": cpu,
        "explained": plans_explained,
    }


def report(rows: list[dict], pg_tps: float, redis_rates: dict[str, float], args) -> str:
    cores = os.cpu_count()
    lines = [
        f"Machine: {cores} cores, {platform.python_implementation()} {platform.python_version()}, PostgreSQL and Redis "
        f"on loopback, other work running beside this benchmark. `bench/scale.py`: plans built in bulk, a tenth due; "
        f"(a) the tick with the workers stopped; (b) gunicorn (2 workers) and {args.rq_workers} × `rq worker "
        f"--worker-class runtime.Worker` until every due installment is paid (its charge sent through the sandbox, "
        f"its webhook accepted, its outcome applied), at most {args.e2e_seconds:.0f} s.",
        "",
        "| plans | due | (a) opening | (a) whole tick | tick per plan | tick per due installment | (b) charges applied "
        "| (b) seconds | (b) charges/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['plans']:,} | {r['due']:,} | {r['opening']:.2f} s | {r['tick']:.2f} s | "
            f"{r['tick'] / r['plans'] * 1e6:.1f} µs | {r['tick'] / r['due'] * 1e6:.0f} µs | {r['charged']:,} | "
            f"{r['e2e']:.1f} | {r['charged'] / r['e2e']:.0f} |"
        )
    lines += [
        "",
        f"Ceilings in the same run: `pgbench -S -c 2 -j 2 -T 5` {pg_tps:,.0f} select-only transactions/s; "
        "`redis-benchmark -c 10 -n 50000` "
        + ", ".join(f"{name} {rate:,.0f}/s" for name, rate in redis_rates.items())
        + ".",
        "",
        "CPU during (b), in cores used on average, by group of processes (from /proc), and per charge in ms:",
        "",
        "| plans | " + " | ".join(TRANCHE) + " | Tranche in all (ms per charge) | other processes (cores) |",
        "|---:|" + "---:|" * (len(TRANCHE) + 2),
    ]
    for r in rows:
        used = [r["cpu"].get(g, 0.0) for g in TRANCHE]
        per_charge = sum(used) * r["e2e"] / max(r["charged"], 1) * 1000
        lines.append(
            f"| {r['plans']:,} | "
            + " | ".join(f"{u:.2f}" for u in used)
            + f" | {per_charge:.2f} | {r['cpu'].get(CpuMeter.OTHERS, 0.0):.2f} |"
        )
    for r in rows:
        if r["explained"]:
            lines += ["", f"### The tick's queries over {r['plans']:,} plans (EXPLAIN ANALYZE, before the tick)", ""]
            lines += [EXPLAINED, ""]
            for sql, plan in r["explained"]:
                lines += ["```", sql if len(sql) < 400 else sql[:400] + " …", "", plan, "```", ""]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Cost against plans, in the plot virtualenv: seconds of the tick and of the charges, and per plan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plans = [r["plans"] for r in rows]
    figure, (seconds, per_plan) = plt.subplots(1, 2, figsize=(11, 4.2))
    lines = (
        ("tick", "(a) tick: open and queue the due tenth"),
        ("e2e_full", "(b) charges end to end (past --e2e-seconds: at the rate measured)"),
    )
    for key, label in lines:
        values = [r[key] for r in rows]
        seconds.plot(plans, values, marker="o", label=label)
        per_plan.plot(plans, [v / p * 1e6 for v, p in zip(values, plans, strict=True)], marker="o", label=label)
    seconds.set(xscale="log", yscale="log", xlabel="plans (a tenth due)", ylabel="seconds", title="cost")
    per_plan.set(xscale="log", yscale="log", xlabel="plans (a tenth due)", ylabel="µs per plan", title="cost per plan")
    for axes in (seconds, per_plan):
        axes.grid(True, which="both", alpha=0.3)
    figure.legend(*seconds.get_legend_handles_labels(), loc="lower center", ncol=2)
    figure.suptitle("Tranche on PostgreSQL, 2 cores with other load (bench/scale.py)")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=100)


def plot_in_its_virtualenv(rows: list[dict], path: Path) -> None:
    python = plotting_python()
    # (b) may have been cut at --e2e-seconds: the plot shows the time all of it would take at the rate measured.
    data = [{**r, "e2e_full": r["e2e"] * r["due"] / max(r["charged"], 1), "explained": []} for r in rows]
    # Kept beside the plot, to draw it again without the run: `bench/scale.py --plot "$(cat bench/scale.json)" PNG`.
    path.with_suffix(".json").write_text(json.dumps(data, indent=1))
    subprocess.run([str(python), __file__, "--plot", json.dumps(data), str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plans", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rq-workers", type=int, default=2)
    parser.add_argument("--e2e-seconds", type=float, default=240, help="bound of each end-to-end phase")
    parser.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/bench_tick")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--output", default=str(ROOT / "bench" / "SCALE.md"))
    parser.add_argument("--plot", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot:
        plot(json.loads(args.plot[0]), Path(args.plot[1]))
        return

    VAR.mkdir(parents=True, exist_ok=True)
    web_port = free_port()
    os.environ.update(
        DATABASE_URL=args.database_url, REDIS_URL=args.redis_url, PUBLIC_URL=f"http://127.0.0.1:{web_port}"
    )
    ensure_database(args.database_url)
    database = args.database_url.rsplit("/", 1)[1]
    meter = CpuMeter(database)
    print("ceilings: pgbench, redis-benchmark …", flush=True)
    pg_tps, redis_rates = pgbench(database), redis_benchmark(int(args.redis_url.rsplit("/", 1)[1]))
    print(f"  pgbench {pg_tps:.0f} tps; redis-benchmark {redis_rates}", flush=True)
    rows = [run_size(args, plans, meter, web_port) for plans in sorted(args.plans)]
    table = report(rows, pg_tps, redis_rates, args)
    Path(args.output).write_text(table)
    print(table.split("\n### ")[0])
    plot_in_its_virtualenv(rows, ROOT / "bench" / "scale.png")


if __name__ == "__main__":
    main()
