"""A row kept once by its unique value (models.insert_new, models.unless_taken): a second with the same value is left
out, and only such a row: one the database refuses for another reason fails, on SQLite as on PostgreSQL, where it
would have passed for a duplicate (a gateway's event answered "duplicate" and lost)."""

import datetime as dt

import pytest
from peewee import IntegrityError

from models import GatewayEvent, SlackRequest, insert_new, unless_taken

NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)


def event(webhook_id: str, body: str | None = "{}") -> dict:
    return {"webhook_id": webhook_id, "type": "payment.failed", "body": body, "received_at": NOW}


def test_an_event_stored_again_under_its_webhook_id_is_left_out():
    assert insert_new(GatewayEvent, **event("evt_1")) == 1
    assert insert_new(GatewayEvent, **event("evt_1", body='{"again": true}')) == 0

    assert [(e.webhook_id, e.body) for e in GatewayEvent.select()] == [("evt_1", "{}")]


def test_an_event_missing_a_required_value_fails_rather_than_pass_for_a_duplicate():
    with pytest.raises(IntegrityError):
        insert_new(GatewayEvent, **event("evt_2", body=None))

    assert not GatewayEvent.select().exists()


def test_rows_written_together_leave_out_their_duplicates_alone():
    rows = [{"key": "a", "seen_at": NOW}, {"key": "a", "seen_at": NOW}, {"key": "b", "seen_at": NOW}]

    assert unless_taken(SlackRequest.insert_many(rows)).as_rowcount().execute() == 2
    assert sorted(r.key for r in SlackRequest.select()) == ["a", "b"]


def test_rows_written_together_fail_whole_on_one_the_database_refuses():
    rows = [{"key": "c", "seen_at": NOW}, {"key": "d", "seen_at": None}]

    with pytest.raises(IntegrityError):
        unless_taken(SlackRequest.insert_many(rows)).execute()

    assert not SlackRequest.select().exists()
