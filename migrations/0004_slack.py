# Generated from a schema diff on 2026-11-24 17:29.
from peewee import *
from models import JSONField
from models import UTCDateTimeField

def up(migrator, db):
    class Order(Model):
        class Meta:
            database = db
            table_name = 'order'

    class Seller(Model):
        class Meta:
            database = db
            table_name = 'seller'

    class SlackInstallation(Model):
        client_id = CharField()
        enterprise_id = CharField(null=True)
        team_id = CharField(null=True)
        user_id = CharField(null=True)
        is_enterprise_install = BooleanField(default=False)
        installation = JSONField()
        installed_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'slack_installation'
            indexes = ((('client_id', 'enterprise_id', 'team_id', 'installed_at'), False),)
    db.create_tables([SlackInstallation])

    class SlackInstallGrant(Model):
        seller = ForeignKeyField(Seller, on_delete='CASCADE')
        state_hash = CharField(unique=True)
        expires_at = UTCDateTimeField()
        used_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'slack_install_grant'
    db.create_tables([SlackInstallGrant])

    class SlackLink(Model):
        seller = ForeignKeyField(Seller, unique=True, on_delete='CASCADE')
        team_id = CharField(unique=True)
        channel_id = CharField()
        allowed_user_ids = JSONField(null=True)
        linked_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'slack_link'
    db.create_tables([SlackLink])

    class SlackMessage(Model):
        seller = ForeignKeyField(Seller, on_delete='CASCADE')
        order = ForeignKeyField(Order, on_delete='CASCADE')
        channel_id = CharField(null=True)
        ts = CharField(null=True)
        response_url = TextField(null=True)
        blocks = JSONField()
        created_at = UTCDateTimeField()
        settled_at = UTCDateTimeField(index=True, null=True)
        class Meta:
            database = db
            table_name = 'slack_message'
            indexes = ((('channel_id', 'ts'), True),)
    db.create_tables([SlackMessage])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('slack_message'))
    migrator.migrate(migrator.drop_table('slack_link'))
    migrator.migrate(migrator.drop_table('slack_install_grant'))
    migrator.migrate(migrator.drop_table('slack_installation'))
