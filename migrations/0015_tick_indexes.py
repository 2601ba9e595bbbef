# The tick at scale: each query it runs over a million plans reads an index of the few rows it wants (bench/SCALE.md).
from peewee import *

INDEXES = (
    ("installment_due_scheduled", "installment", "due_at, id", "status = 'scheduled'"),
    ("charge_attempt_due_scheduled", "charge_attempt", "due_at", "status = 'scheduled'"),
    ("charge_attempt_sent_in_flight", "charge_attempt", "requested_at", "status = 'in_flight'"),
)


def up(migrator, db):
    for name, table, columns, where in INDEXES:
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns}) WHERE {where}')


def down(migrator, db):
    for name, _table, _columns, _where in INDEXES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
