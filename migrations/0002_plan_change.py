# Generated from a schema diff on 2026-11-24 17:04.
from peewee import *
from models import MoneyField
from models import UTCDateTimeField

def up(migrator, db):
    class Order(Model):
        class Meta:
            database = db
            table_name = 'order'

    class PlanChange(Model):
        order = ForeignKeyField(Order, on_delete='CASCADE')
        old_amount = MoneyField()
        new_amount = MoneyField()
        proposed_at = UTCDateTimeField()
        expires_at = UTCDateTimeField(index=True)
        status = CharField(index=True, default='pending')
        decided_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'plan_change'
    db.create_tables([PlanChange])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('plan_change'))
