# The gateway's advice on a declined charge (Stripe's advice_code): do_not_try_again makes it a hard decline.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_column('charge_attempt', 'advice_code', CharField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('charge_attempt', 'advice_code'))
