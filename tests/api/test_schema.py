"""/api/schema/ describes every operation of the API (docs/api-reference.md), with its errors."""

import pytest

from tests.api.conftest import API_OPERATIONS, EXTERNAL_ASSET, error_code
from tests.factories import CreditTypeFactory, PlanFactory
from tests.ledger import priced_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema_of(client):
    def fetch():
        response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        return response.json()

    return fetch


@pytest.fixture
def schema(schema_of):
    return schema_of()


def test_the_schema_has_exactly_the_operations_of_the_api(schema):
    operations = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert operations == API_OPERATIONS


def test_consume_documents_each_error_status(schema):
    responses = schema["paths"]["/api/v1/consume"]["post"]["responses"]
    assert {"201", "400", "401", "402", "403", "404", "409", "413", "429"} <= set(responses)
    assert "insufficient_credits" in responses["402"]["description"]
    error = responses["402"]["content"]["application/json"]["schema"]["$ref"]
    assert error == "#/components/schemas/Error"


def test_the_docs_page_is_served_without_a_cdn(client):
    page = client.get("/api/docs/").content.decode()
    assert not EXTERNAL_ASSET.search(page) and "/static/" in page


def test_every_operation_names_its_scopes_and_the_reservation_links(schema):
    consume = schema["paths"]["/api/v1/consume"]["post"]
    assert consume["x-scopes"] == ["usage:write"]
    grants = schema["paths"]["/api/v1/accounts/{external_id}/grants"]["post"]
    assert grants["x-scopes"] == ["grants:write"]
    created = schema["paths"]["/api/v1/reservations"]["post"]["responses"]["201"]["links"]
    assert created["CommitReservation"] == {
        "operationId": "reservations_commit_create",
        "parameters": {"reservation_id": "$response.body#/id"},
    }


def test_the_catalog_codes_a_request_may_name_are_listed(schema_of):
    plan = PlanFactory(code="starter")
    PlanFactory(code="retired", active=False)
    CreditTypeFactory(code="credits")
    CreditTypeFactory(code="gpu_minutes")
    schemas = schema_of()["components"]["schemas"]
    assert schemas["AccountInRequest"]["properties"]["plan"]["enum"] == [plan.code]
    # Not synced to Stripe: no checkout takes it yet, so no plan code is valid there.
    checkout_plan = schemas["CheckoutInRequest"]["properties"]["plan"]
    assert checkout_plan["not"] == {} and "enum" not in checkout_plan
    grant = schemas["GrantInRequest"]
    assert grant["properties"]["credit_type"]["enum"] == ["credits", "gpu_minutes"]
    assert "credit_type" in grant["required"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/api/v1/accounts/acme", {"name": 0}),
        ("put", "/api/v1/accounts/acme", {"name": "Acme", "plan": 1}),
        ("get", "/api/v1/accounts/acme/balance?at=", None),
        ("get", "/api/v1/accounts/acme/ledger?until=", None),
        ("get", "/api/v1/accounts/acme/usage?since=2026-11-01", None),
        ("get", f"/api/v1/accounts/acme/ledger?cursor=b{'9' * 19}", None),
        ("post", "/api/v1/consume/batch", {"events": [{"account": "acme"}, [None, None]]}),
        ("post", "/api/v1/consume/batch", {"events": []}),
        ("post", "/api/v1/consume", {"account": 7, "feature": "api_call"}),
        ("post", "/api/v1/consume", {"account": "acme ", "feature": "api_call"}),
        ("post", "/api/v1/consume", {"account": "acme", "feature": "api_call", "quantity": "1e3"}),
        ("post", "/api/v1/consume", {"account": "acme", "feature": "api_call", "quantity": "0"}),
        ("post", "/api/v1/reservations",
         {"account": "acme", "feature": "api_call", "quantity": 1, "ttl_seconds": "60"}),
        ("post", "/api/v1/accounts/acme/grants",
         {"amount": 1, "source": "promo", "reason": "r", "priority": "1"}),
    ],
)  # fmt: skip
def test_what_the_schema_forbids_the_server_refuses(authed_client, method, path, body):
    """Each of these broke the schema's types, formats or patterns and used to be accepted
    (coerced, trimmed or ignored) or refused only later for another reason."""
    priced_account(external_id="acme", credits=10)
    response = getattr(authed_client, method)(path, body, format="json")
    assert (response.status_code, error_code(response)) == (400, "validation_error")
