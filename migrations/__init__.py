"""Schema migrations: numbered scripts in this folder, applied in order by peewee's runner."""

from pathlib import Path

from playhouse.migrations import Runner

from runtime import database

DIRECTORY = Path(__file__).parent


def upgrade() -> list[str]:
    """Apply the pending migrations; returns their names."""
    runner = Runner(database().obj, directory=str(DIRECTORY))
    return runner.up()


def pending() -> list[str]:
    """The migrations this code has that the database has not applied."""
    runner = Runner(database().obj, directory=str(DIRECTORY))
    return [migration.name for migration in runner.status() if migration.path is not None and not migration.applied]
