# R17: a seller's opt-in daily digest, and when the next one is due (09:00 in the seller's time zone).
from peewee import *
from models import UTCDateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("seller", "digest", BooleanField(default=False)),
        migrator.add_column("seller", "digest_due_at", UTCDateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("seller", "digest"), migrator.drop_column("seller", "digest_due_at"))
