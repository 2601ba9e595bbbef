"""Schema migrations: numbered scripts in this folder, applied in order by peewee's runner."""

from pathlib import Path

from playhouse.migrations import Runner

from runtime import database

DIRECTORY = Path(__file__).parent


def upgrade() -> list[str]:
    """Apply the pending migrations; returns their names."""
    runner = Runner(database().obj, directory=str(DIRECTORY))
    return runner.up()
