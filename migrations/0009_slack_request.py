# Generated from a schema diff on 2026-11-27 10:12.
from peewee import *
from models import UTCDateTimeField

def up(migrator, db):
    class SlackRequest(Model):
        key = CharField(unique=True)
        seen_at = UTCDateTimeField(index=True)
        class Meta:
            database = db
            table_name = 'slack_request'
    db.create_tables([SlackRequest])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('slack_request'))
