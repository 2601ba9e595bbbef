# Stripe charges a saved payment method off-session only together with the Stripe Customer it is attached to.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_column('customer', 'gateway_customer_id', CharField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('customer', 'gateway_customer_id'))
