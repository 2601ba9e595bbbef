# A failed gateway event keeps its error, how often it failed and when it is tried again.
from peewee import *
from models import UTCDateTimeField

def up(migrator, db):
    migrator.migrate(
        migrator.add_column('gateway_event', 'tries', IntegerField(default=0)),
        migrator.add_column('gateway_event', 'next_try_at', UTCDateTimeField(null=True, index=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('gateway_event', 'next_try_at'),
        migrator.drop_column('gateway_event', 'tries'),
    )
