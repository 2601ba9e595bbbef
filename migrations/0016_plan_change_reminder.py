# R15: when the customer was reminded of a plan change left unanswered; the tick reads the pending ones.
from peewee import *
from models import UTCDateTimeField


def up(migrator, db):
    migrator.migrate(migrator.add_column("plan_change", "reminded_at", UTCDateTimeField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("plan_change", "reminded_at"))
