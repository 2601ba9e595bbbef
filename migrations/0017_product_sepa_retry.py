# R16: a product may retry a SEPA debit that failed for insufficient funds, once, 7 days later (off by default).
from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("product", "sepa_retry", BooleanField(default=False)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("product", "sepa_retry"))
