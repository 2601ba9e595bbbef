"""Benchmark: what one scrape of GET /metrics costs on a database of a busy seller base.

Seeds the database (emptied first) with --orders orders of three installments in every state, their attempts,
a gateway event and two messages per charge, and collection cases; a few rows of each wait (the gauges' subject).
Then scrapes through the web app's test client --scrapes times and prints the queries a scrape runs with their
plans, and its p50/p99 time. PostgreSQL by default (EXPLAIN's plans); SQLite works too.

    .venv/bin/python bench/scrape.py --database-url postgresql://root@127.0.0.1:5432/tranche_bench \\
        --redis-url redis://127.0.0.1:6379/5
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
BATCH = 2000


def seed(orders: int) -> dict[str, int]:
    from models import (
        MODELS,
        ChargeAttempt,
        CollectionCase,
        Customer,
        GatewayEvent,
        Installment,
        Order,
        Outbox,
        Product,
        Seller,
        db,
    )

    def insert(model, rows):
        for start in range(0, len(rows), BATCH):
            model.insert_many(rows[start : start + BATCH]).execute()

    with db.atomic():
        for model in reversed(MODELS):
            model.delete().execute()
        sellers = [
            Seller.create(name=f"S{i}", email=f"s{i}@example.com", api_key_hash=f"h{i}", created_at=NOW)
            for i in range(100)
        ]
        products = [Product.create(seller=s, name="Course", notification_email=s.email) for s in sellers]
        insert(
            Customer,
            [
                {"seller": sellers[i % 100].id, "name": f"C{i}", "email": f"c{i}@example.com", "name_folded": f"c{i}"}
                for i in range(orders)
            ],
        )
        first_customer = Customer.select(Customer.id).order_by(Customer.id).first().id
        # 90% active, 4% interrupted, 3% in collections, 1% handed off, 2% completed.
        statuses = ["active"] * 90 + ["interrupted"] * 4 + ["collections"] * 3 + ["handed_off"] + ["completed"] * 2
        insert(
            Order,
            [
                {
                    "seller": sellers[i % 100].id,
                    "product": products[i % 100].id,
                    "customer": first_customer + i,
                    "invoice_number": f"INV-{i}",
                    "plan": "installments",
                    "installment_count": 3,
                    "interval": "monthly",
                    "amount": 3000,
                    "anchor_at": NOW - dt.timedelta(days=40),
                    "method": "card",
                    "card_token": "tok_ok",
                    "status": statuses[i % 100],
                    "created_at": NOW - dt.timedelta(days=41),
                }
                for i in range(orders)
            ],
        )
        order_ids = [o.id for o in Order.select(Order.id, Order.status).order_by(Order.id)]
        order_status = dict(Order.select(Order.id, Order.status).tuples())
        installments, attempts, events, messages = [], [], [], []
        for n, order_id in enumerate(order_ids):
            status = order_status[order_id]
            # Installment 1 paid long ago; 2 due 10 days ago: paid, or open in dunning; 3 due in 20 days.
            second = "paid" if status in ("active", "completed") and n % 20 else "open"
            if status == "handed_off":
                second = "handed_off"
            for number, due, state in (
                (1, -40, "paid"),
                (2, -10, second),
                (3, 20, "paid" if status == "completed" else "scheduled"),
            ):
                installments.append(
                    {
                        "order": order_id,
                        "number": number,
                        "due_at": NOW + dt.timedelta(days=due),
                        "amount": 3000,
                        "status": state,
                    }
                )
        insert(Installment, installments)
        for inst_id, order_id, number, state, due in Installment.select(
            Installment.id, Installment.order, Installment.number, Installment.status, Installment.due_at
        ).tuples():
            if due.tzinfo is None:
                due = due.replace(tzinfo=dt.UTC)
            if state == "scheduled":
                continue
            key = f"tranche-{order_id}-{number}-automatic-1"
            outcome = "succeeded" if state == "paid" else "failed"
            attempts.append(
                {
                    "installment": inst_id,
                    "number": 1,
                    "kind": "automatic",
                    "idempotency_key": key,
                    "due_at": due,
                    "status": outcome,
                    "amount": 3000,
                    "requested_at": due,
                    "settled_at": due,
                    "reference": f"ch_{key}",
                }
            )
            if state == "open" and order_status[order_id] == "active":
                attempts.append(
                    {
                        "installment": inst_id,
                        "number": 2,
                        "kind": "automatic",
                        "idempotency_key": key[:-1] + "2",
                        "due_at": due + dt.timedelta(days=7),
                        "status": "scheduled",
                        "amount": 3000,
                    }
                )
            events.append(
                {
                    "webhook_id": f"evt_{key}",
                    "type": f"payment.{outcome}",
                    "body": "{}",
                    "received_at": due,
                    "status": "processed",
                    "processed_at": due,
                }
            )
            for template in ("customer_receipt", "seller_note"):
                messages.append(
                    {
                        "template": template,
                        "recipient": "x@example.com",
                        "context": "{}",
                        "dedupe_key": f"{template}-{key}",
                        "created_at": due,
                        "sent_at": due,
                        "next_try_at": due,
                    }
                )
        insert(ChargeAttempt, attempts)
        insert(GatewayEvent, events)
        insert(Outbox, messages)
        cases = [
            {
                "order": order_id,
                "reason": "SEPA debit failed",
                "opened_at": NOW - dt.timedelta(days=9),
                **(
                    {
                        "handed_off_at": NOW - dt.timedelta(days=5),
                        "handed_off_amount": 3000,
                        "handed_off_installments": "[2]",
                        "delivered_at": NOW - dt.timedelta(days=5),
                    }
                    if order_status[order_id] == "handed_off"
                    else {}
                ),
            }
            for order_id in order_ids
            if order_status[order_id] in ("collections", "handed_off")
        ]
        insert(CollectionCase, cases)
        # What waits: charges unanswered, events not applied or failed, messages unsent, hand-offs undelivered.
        in_flight = ChargeAttempt.select(ChargeAttempt.id).where(ChargeAttempt.status == "scheduled").limit(100)
        ChargeAttempt.update(status="in_flight", requested_at=NOW - dt.timedelta(minutes=30)).where(
            ChargeAttempt.id.in_(in_flight)
        ).execute()
        waiting = GatewayEvent.select(GatewayEvent.id).order_by(GatewayEvent.id.desc()).limit(25)
        GatewayEvent.update(status="received", processed_at=None).where(GatewayEvent.id.in_(waiting)).execute()
        unsent = Outbox.select(Outbox.id).order_by(Outbox.id.desc()).limit(50)
        Outbox.update(sent_at=None).where(Outbox.id.in_(unsent)).execute()
        undelivered = (
            CollectionCase.select(CollectionCase.id).where(CollectionCase.delivered_at.is_null(False)).limit(20)
        )
        CollectionCase.update(delivered_at=None, next_delivery_at=NOW).where(
            CollectionCase.id.in_(undelivered)
        ).execute()
    return {
        model.__name__: model.select().count()
        for model in (Order, Installment, ChargeAttempt, GatewayEvent, Outbox, CollectionCase)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["REDIS_URL"] = args.redis_url
    os.environ.setdefault("TRANCHE_VAR", str(ROOT / "var" / "bench"))

    from playhouse.test_utils import count_queries

    from app import create_app
    from metrics import exposition
    from migrations import upgrade
    from models import db
    from runtime import work_queues

    app = create_app()
    with db.connection_context():
        upgrade()
        started = time.monotonic()
        rows = seed(args.orders)
        print(f"seeded in {time.monotonic() - started:.0f} s: " + ", ".join(f"{n} {name}" for name, n in rows.items()))
        if not db.for_update:
            db.execute_sql("ANALYZE")
        else:
            db.execute_sql("VACUUM ANALYZE")
        with count_queries() as queries:
            exposition(lambda: NOW, work_queues())
        print(f"\n{queries.count} queries a scrape:")
        for query in queries.get_queries():
            sql, params = query.msg
            print(f"\n{sql}\n    with {params}")
            explain = "EXPLAIN ANALYZE " if db.for_update else "EXPLAIN QUERY PLAN "
            for line in db.execute_sql(explain + sql, params).fetchall():
                print("   ", " | ".join(str(part) for part in line))
    client = app.test_client()
    timings = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        assert client.get("/metrics").status_code == 200
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(
        f"\nGET /metrics, {args.scrapes} scrapes: p50 {statistics.median(timings):.1f} ms, "
        f"p99 {timings[int(len(timings) * 0.99) - 1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
