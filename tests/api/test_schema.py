"""/api/schema/ describes every operation of API.md, with its errors."""

import pytest

from tests.api.conftest import EXTERNAL_ASSET

pytestmark = pytest.mark.django_db

API_MD = {
    ("/api/v1/accounts/{external_id}", "put"), ("/api/v1/accounts/{external_id}", "get"),
    ("/api/v1/accounts/{external_id}/balance", "get"),
    ("/api/v1/accounts/{external_id}/entitlements", "get"),
    ("/api/v1/accounts/{external_id}/ledger", "get"),
    ("/api/v1/accounts/{external_id}/usage", "get"),
    ("/api/v1/check", "post"), ("/api/v1/consume", "post"), ("/api/v1/consume/batch", "post"),
    ("/api/v1/reservations", "post"), ("/api/v1/reservations/{reservation_id}", "get"),
    ("/api/v1/reservations/{reservation_id}/commit", "post"),
    ("/api/v1/reservations/{reservation_id}/release", "post"),
    ("/api/v1/accounts/{external_id}/grants", "post"),
    ("/api/v1/plans", "get"), ("/api/v1/credit-packs", "get"), ("/api/v1/features", "get"),
    ("/api/v1/accounts/{external_id}/checkout", "post"),
    ("/api/v1/accounts/{external_id}/billing-link", "post"),
}  # fmt: skip


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_has_exactly_the_operations_of_api_md(schema):
    operations = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert operations == API_MD


def test_consume_documents_each_error_status_of_api_md(schema):
    responses = schema["paths"]["/api/v1/consume"]["post"]["responses"]
    assert {"201", "400", "401", "402", "403", "404", "409", "413", "429"} <= set(responses)
    assert "insufficient_credits" in responses["402"]["description"]
    error = responses["402"]["content"]["application/json"]["schema"]["$ref"]
    assert error == "#/components/schemas/Error"


def test_the_docs_page_is_served_without_a_cdn(client):
    page = client.get("/api/docs/").content.decode()
    assert not EXTERNAL_ASSET.search(page) and "/static/" in page
