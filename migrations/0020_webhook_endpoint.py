# The sellers' own webhook endpoints: Tranche POSTs its events there, signed per Standard Webhooks.
from peewee import *
from models import UTCDateTimeField


def up(migrator, db):
    class Seller(Model):
        class Meta:
            database = db
            table_name = "seller"

    class WebhookEndpoint(Model):
        seller = ForeignKeyField(Seller, on_delete="CASCADE")
        url = CharField(max_length=2000)
        secret = CharField()
        created_at = UTCDateTimeField()
        failing_since = UTCDateTimeField(null=True)
        disabled_at = UTCDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "webhook_endpoint"

    db.create_tables([WebhookEndpoint])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("webhook_endpoint"))
