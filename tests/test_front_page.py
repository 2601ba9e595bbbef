"""GET /: what Tranche is and where its API is described, for a browser and for a JSON client."""

import re


def test_the_front_page_says_what_tranche_is_and_links_the_api_document_that_answers(client):
    """A browser reads what Tranche does and follows a link to the OpenAPI document, which is there."""
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})

    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Tranche keeps the installment plans and subscriptions of digital-product sellers paid" in html
    links = re.findall(r'href="(/[^"]*)"', html)
    assert "/api/v1/openapi.json" in links and "/healthz" in links
    assert client.get("/api/v1/openapi.json").get_json()["openapi"] == "3.1.0"


def test_a_client_asking_for_json_gets_the_same_as_json(client):
    """Accept: application/json: the name, the description and where the API document and health check are."""
    answer = client.get("/", headers={"Accept": "application/json"})

    assert answer.status_code == 200
    about = answer.get_json()
    assert about["name"] == "Tranche" and "digital-product sellers" in about["description"]
    assert (about["api"], about["health"]) == ("/api/v1/openapi.json", "/healthz")
