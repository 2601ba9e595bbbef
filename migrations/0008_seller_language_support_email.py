# R11: the seller's language for the seller's emails, a product's support address for the customers'.
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('seller', 'language', CharField(default='en')),
        migrator.add_column('product', 'support_email', CharField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('product', 'support_email'),
        migrator.drop_column('seller', 'language'),
    )
