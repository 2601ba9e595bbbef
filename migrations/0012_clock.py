# Time travel outside production (flask clock): one row that every process reads its time through.
from peewee import *


def up(migrator, db):
    class Clock(Model):
        offset_us = BigIntegerField()

        class Meta:
            database = db
            table_name = "clock"

    db.create_tables([Clock])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("clock"))
