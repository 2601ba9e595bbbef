# R12: the customer's name folded for accent- and case-insensitive search, filled for the customers there are.
from peewee import *
from models import folded

def up(migrator, db):
    migrator.migrate(migrator.add_column('customer', 'name_folded', TextField(default='')))

    class Customer(Model):
        name = CharField()
        name_folded = TextField(default='')
        class Meta:
            database = db
            table_name = 'customer'
    for customer in Customer.select(Customer.id, Customer.name).iterator():
        Customer.update(name_folded=folded(customer.name)).where(Customer.id == customer.id).execute()


def down(migrator, db):
    migrator.migrate(migrator.drop_column('customer', 'name_folded'))
