# Generated from a schema diff on 2026-11-24 17:02.
from peewee import *
from models import JSONField
from models import MoneyField
from models import UTCDateTimeField

def up(migrator, db):
    class Seller(Model):
        name = CharField()
        email = CharField()
        api_key_hash = CharField(unique=True)
        timezone = CharField(default='Europe/Berlin')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'seller'
    db.create_tables([Seller])

    class Product(Model):
        seller = ForeignKeyField(Seller)
        name = CharField()
        notification_email = CharField()
        class Meta:
            database = db
            table_name = 'product'
    db.create_tables([Product])

    class Customer(Model):
        seller = ForeignKeyField(Seller)
        name = CharField()
        email = CharField()
        language = CharField(default='en')
        class Meta:
            database = db
            table_name = 'customer'
    db.create_tables([Customer])

    class Order(Model):
        seller = ForeignKeyField(Seller)
        product = ForeignKeyField(Product)
        customer = ForeignKeyField(Customer)
        invoice_number = CharField()
        plan = CharField()
        installment_count = IntegerField(null=True)
        interval = CharField()
        amount = MoneyField()
        currency = CharField(default='EUR')
        anchor_at = UTCDateTimeField()
        method = CharField()
        card_token = CharField(null=True)
        card_brand = CharField(null=True)
        card_last4 = CharField(null=True)
        card_exp_month = SmallIntegerField(null=True)
        card_exp_year = SmallIntegerField(null=True)
        sepa_mandate = CharField(null=True)
        iban_masked = CharField(null=True)
        status = CharField(index=True, default='active')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'order'
            indexes = ((('seller', 'invoice_number'), True),)
    db.create_tables([Order])

    class Installment(Model):
        order = ForeignKeyField(Order, on_delete='CASCADE')
        number = IntegerField()
        due_at = UTCDateTimeField(index=True)
        amount = MoneyField()
        status = CharField(index=True, default='scheduled')
        paid_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'installment'
            indexes = ((('order', 'number'), True),)
    db.create_tables([Installment])

    class ChargeAttempt(Model):
        installment = ForeignKeyField(Installment, on_delete='CASCADE')
        number = IntegerField()
        kind = CharField(default='automatic')
        idempotency_key = CharField(unique=True)
        due_at = UTCDateTimeField(index=True)
        status = CharField(index=True, default='scheduled')
        amount = MoneyField()
        requested_at = UTCDateTimeField(null=True)
        reference = CharField(index=True, null=True)
        failure_code = CharField(null=True)
        failure_message = TextField(null=True)
        settled_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'charge_attempt'
            indexes = ((('installment', 'kind', 'number'), True),)
    db.create_tables([ChargeAttempt])

    class CollectionCase(Model):
        order = ForeignKeyField(Order, unique=True, on_delete='CASCADE')
        reason = TextField()
        opened_at = UTCDateTimeField()
        handed_off_at = UTCDateTimeField(null=True)
        handed_off_amount = MoneyField(null=True)
        handed_off_installments = JSONField(null=True)
        delivered_at = UTCDateTimeField(null=True)
        delivery_attempts = IntegerField(default=0)
        next_delivery_at = UTCDateTimeField(index=True, null=True)
        last_delivery_error = TextField(null=True)
        class Meta:
            database = db
            table_name = 'collection_case'
    db.create_tables([CollectionCase])

    class GatewayEvent(Model):
        webhook_id = CharField(unique=True)
        type = CharField()
        body = TextField()
        received_at = UTCDateTimeField()
        status = CharField(index=True, default='received')
        note = TextField(null=True)
        processed_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'gateway_event'
    db.create_tables([GatewayEvent])

    class Outbox(Model):
        channel = CharField(default='email')
        template = CharField()
        recipient = CharField()
        language = CharField(default='en')
        context = JSONField()
        dedupe_key = CharField(unique=True)
        created_at = UTCDateTimeField()
        sent_at = UTCDateTimeField(index=True, null=True)
        claimed_until = UTCDateTimeField(null=True)
        attempts = IntegerField(default=0)
        next_try_at = UTCDateTimeField(index=True)
        last_error = TextField(null=True)
        class Meta:
            database = db
            table_name = 'outbox'
    db.create_tables([Outbox])

    class SandboxCharge(Model):
        idempotency_key = CharField(unique=True)
        reference = CharField(unique=True)
        order_id = IntegerField()
        installment = IntegerField()
        amount = MoneyField()
        currency = CharField()
        method = CharField()
        failure_code = CharField(null=True)
        occurred_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'sandbox_charge'
    db.create_tables([SandboxCharge])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('sandbox_charge'))
    migrator.migrate(migrator.drop_table('outbox'))
    migrator.migrate(migrator.drop_table('gateway_event'))
    migrator.migrate(migrator.drop_table('collection_case'))
    migrator.migrate(migrator.drop_table('charge_attempt'))
    migrator.migrate(migrator.drop_table('installment'))
    migrator.migrate(migrator.drop_table('order'))
    migrator.migrate(migrator.drop_table('customer'))
    migrator.migrate(migrator.drop_table('product'))
    migrator.migrate(migrator.drop_table('seller'))
