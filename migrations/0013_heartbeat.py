# The tick's heartbeat, for /readyz and flask status.
from peewee import *
from models import UTCDateTimeField


def up(migrator, db):
    class Heartbeat(Model):
        name = CharField(unique=True)
        seen_at = UTCDateTimeField()

        class Meta:
            database = db
            table_name = "heartbeat"

    db.create_tables([Heartbeat])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("heartbeat"))
