# A worker's claim on a received event: any number of workers apply events side by side (jobs.work).
from peewee import *
from models import UTCDateTimeField


def up(migrator, db):
    migrator.migrate(migrator.add_column("gateway_event", "claimed_until", UTCDateTimeField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("gateway_event", "claimed_until"))
