import datetime as dt

from peewee import SqliteDatabase
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

from migrations import DIRECTORY
from models import MODELS, Customer, Seller, db


def test_the_migrations_build_exactly_the_schema_the_models_describe():
    """A model change without its migration fails here, on every backend CI runs."""
    assert not diff_models(db.obj, MODELS)


def test_a_database_made_by_an_earlier_version_upgrades_without_losing_rows(tmp_path):
    """Each migration applied on top of the one before keeps the rows it finds."""
    old = SqliteDatabase(str(tmp_path / "old.db"))
    migrations = Runner(old, directory=str(DIRECTORY))
    first = migrations.migrations()[0].name
    migrations.up(target=first)
    # Written as the first version wrote it: today's model would also set the columns added since.
    old.execute_sql(
        "INSERT INTO seller (name, email, api_key_hash, timezone, created_at) VALUES (?, ?, ?, ?, ?)",
        ("Early", "early@example.com", "x", "Europe/Berlin", dt.datetime.now(dt.UTC).replace(tzinfo=None)),
    )

    migrations.up()

    assert not migrations.status() or all(m.applied for m in migrations.status())
    with old.bind_ctx(MODELS):
        assert [s.name for s in Seller.select()] == ["Early"]
        assert not diff_models(old, MODELS)


def test_flask_db_upgrade_says_an_up_to_date_database_is_up_to_date(runner):
    """The operator's command is safe to run on every deploy."""
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0
    assert "up to date" in result.output


def test_customers_of_an_earlier_version_are_found_without_their_accents_after_the_upgrade(tmp_path):
    """Migration 0006 folds the names already stored, so 'jurgen' finds a Jürgen created before it."""
    old = SqliteDatabase(str(tmp_path / "old.db"))
    migrations = Runner(old, directory=str(DIRECTORY))
    before = [m.name for m in migrations.migrations() if m.name < "0006"][-1]
    migrations.up(target=before)
    old.execute_sql(
        "INSERT INTO seller (name, email, api_key_hash, timezone, created_at) "
        "VALUES ('A', 'a@example.com', 'x', 'Europe/Berlin', '2026-01-01 00:00:00')"
    )
    old.execute_sql(
        "INSERT INTO customer (seller_id, name, email, language) VALUES (1, 'Jürgen Müller', 'j@x.de', 'de')"
    )

    migrations.up()

    with old.bind_ctx(MODELS):
        assert [c.name_folded for c in Customer.select()] == ["jurgen muller"]
