# An index on a foreign key that a unique index already starts with: every query it served, that one serves, and
# each one cost every insert and every move of a row (README, Benchmarks: the tick's opening 0.52 s to 0.47).
from peewee import *

INDEXES = (
    ("installment_order_id", "installment", "order_id"),
    ("chargeattempt_installment_id", "charge_attempt", "installment_id"),
)


def up(migrator, db):
    for name, _table, _column in INDEXES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


def down(migrator, db):
    for name, table, column in INDEXES:
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")')
