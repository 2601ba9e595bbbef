# Generated from a schema diff on 2026-12-01 09:59.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_column('charge_attempt', 'method', CharField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'card_token', CharField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'card_brand', CharField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'card_last4', CharField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'card_exp_month', SmallIntegerField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'card_exp_year', SmallIntegerField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'sepa_mandate', CharField(null=True)))
    migrator.migrate(migrator.add_column('charge_attempt', 'iban_masked', CharField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('charge_attempt', 'iban_masked'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'sepa_mandate'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'card_exp_year'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'card_exp_month'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'card_last4'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'card_brand'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'card_token'))
    migrator.migrate(migrator.drop_column('charge_attempt', 'method'))
