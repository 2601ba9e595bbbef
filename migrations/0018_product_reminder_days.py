# R14: a product may remind its customers N days before each installment (None: no reminder, the default).
from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("product", "reminder_days", SmallIntegerField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("product", "reminder_days"))
