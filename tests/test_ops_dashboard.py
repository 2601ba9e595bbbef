"""rq-dashboard at /ops/rq: not there without OPS_PASSWORD, behind HTTP basic auth with it, working on RQ 3."""

import pytest

from runtime import queue
from tests.test_metrics import a_failed_job

PASSWORD = "correct horse battery staple"


@pytest.fixture
def ops_password(monkeypatch):
    monkeypatch.setenv("OPS_PASSWORD", PASSWORD)


def test_without_ops_password_the_ops_tree_does_not_exist(client):
    """404 for the dashboard, its data and its files, with or without credentials."""
    paths = ["/ops/rq/", "/ops/rq/0/data/queues.json", "/ops/rq/static/css/main.css", "/ops/"]

    answers = [client.get(path, auth=("ops", PASSWORD)).status_code for path in paths]

    assert answers == [404, 404, 404, 404]


def test_a_wrong_or_missing_ops_password_is_refused_with_a_basic_auth_challenge(client, ops_password):
    """401 asking for basic auth, and nothing of the queue in the answer."""
    refused = [client.get("/ops/rq/0/data/queues.json", auth=auth) for auth in (None, ("ops", "wrong"))]

    assert [r.status_code for r in refused] == [401, 401]
    assert all(r.headers["WWW-Authenticate"].startswith("Basic ") for r in refused)
    assert all("tranche" not in r.get_data(as_text=True) for r in refused)


def test_with_the_right_password_the_dashboard_shows_the_queue_and_a_failed_job_with_its_error(client, ops_password):
    """Any user name: its page, its files, the queue's counts and the failed job's traceback (RQ 3.0's registries)."""
    a_failed_job()
    auth = ("anyone", PASSWORD)

    page = client.get("/ops/rq/", auth=auth)
    with client.get("/ops/rq/static/css/main.css", auth=auth) as stylesheet:  # a file, streamed: closed after
        assert stylesheet.status_code == 200
    queues = client.get("/ops/rq/0/data/queues.json", auth=auth).get_json()["queues"]
    failed = client.get("/ops/rq/0/data/jobs/tranche/failed/8/asc/1.json", auth=auth).get_json()["jobs"]
    workers = client.get("/ops/rq/0/data/workers.json", auth=auth)

    assert page.status_code == 200 and "RQ dashboard" in page.get_data(as_text=True)
    assert [(q["name"], q["count"], q["failed_job_registry_count"]) for q in queues] == [("tranche", 0, 1)]
    [job] = failed
    assert job["description"] == "jobs.work.no_such_job()" and "no_such_job" in job["exc_info"]
    assert workers.status_code == 200 and workers.get_json() == {"workers": []}


def test_a_failed_job_is_requeued_from_the_dashboard_and_never_from_another_sites_page(client, ops_password):
    """The dashboard's own POST (its Origin) requeues; the same POST from another site's page is refused 403, and
    "requeue all" by a GET, which any page could have a browser send, 405."""
    a_failed_job()
    [job_id] = queue().failed_job_registry.get_job_ids()
    auth = ("ops", PASSWORD)

    forged = client.post(f"/ops/rq/job/{job_id}/requeue", auth=auth, headers={"Origin": "https://elsewhere.example"})
    assert forged.status_code == 403
    assert client.get("/ops/rq/requeue/tranche", auth=auth).status_code == 405  # "requeue all", as an <img> asks
    assert queue().count == 0
    own = client.post(f"/ops/rq/job/{job_id}/requeue", auth=auth, headers={"Origin": "http://localhost"})

    assert own.status_code == 200 and own.get_json() == {"status": "OK"}
    assert queue().job_ids == [job_id]
    assert queue().failed_job_registry.count == 0
