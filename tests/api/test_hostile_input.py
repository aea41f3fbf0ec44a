"""Small requests that must never cost a server error (found by review)."""

import time

import pytest
from django.test import override_settings

from apps.accounts.services import create_api_key
from apps.usage.models import UsageEvent
from tests.factories import PlanFactory
from tests.ledger import priced_account

from .conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    account, _ = priced_account(credits=10, external_id="acme")
    return account


def post_raw(client, path, raw):
    return client.post(path, data=raw.encode(), content_type="application/json")


@pytest.mark.parametrize("number", ["1e1000000", "1e400", "1e-400"])
def test_huge_or_tiny_numbers_in_metadata_are_refused_at_once(authed_client, account, number):
    started = time.monotonic()
    body = '{"account": "acme", "feature": "api_call", "metadata": {"x": NUMBER}}'
    response = post_raw(authed_client, "/api/v1/consume", body.replace("NUMBER", number))
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/consume", "quantity"), ("/api/v1/check", "quantity")],
)
def test_amounts_with_huge_exponents_are_validation_errors(authed_client, account, path, field):
    body = '{"account": "acme", "feature": "api_call", "FIELD": 1e1000000}'
    response = post_raw(authed_client, path, body.replace("FIELD", field))
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_a_huge_amount_in_one_batch_event_spoils_only_that_event(authed_client, account):
    ok = '{"account": "acme", "feature": "api_call"}'
    huge = '{"account": "acme", "feature": "api_call", "quantity": "1e1000000"}'
    response = post_raw(authed_client, "/api/v1/consume/batch", f'{{"events": [{ok}, {huge}]}}')
    assert [r["status"] for r in response.json()["results"]] == [201, 400]
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize("cursor", ["b\u00b2", "b" + "9" * 5000, "b0", "x1"])
def test_cursors_the_api_did_not_give_are_validation_errors(authed_client, account, cursor):
    response = authed_client.get("/api/v1/accounts/acme/ledger", {"cursor": cursor})
    assert (response.status_code, error_code(response)) == (400, "validation_error")


@pytest.mark.parametrize("path", ["", "/balance", "/ledger", "/grants"])
def test_an_external_id_longer_than_255_characters_is_a_validation_error(authed_client, path):
    method = authed_client.post if path == "/grants" else authed_client.get
    too_long = method(f"/api/v1/accounts/{'a' * 256}{path}", {}, format="json")
    assert (too_long.status_code, error_code(too_long)) == (400, "validation_error")
    assert "external_id" in too_long.json()["error"]["details"]
    longest = authed_client.get(f"/api/v1/accounts/{'a' * 255}")
    assert (longest.status_code, error_code(longest)) == (404, "account_not_found")


def test_creating_an_account_with_a_too_long_external_id_is_a_validation_error(authed_client):
    response = authed_client.put(f"/api/v1/accounts/{'a' * 256}", {"name": "Long"}, format="json")
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_a_key_with_a_nul_character_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer cdk_abc\x00defg_" + "a" * 40)
    response = api_client.get("/api/v1/plans")
    assert (response.status_code, error_code(response)) == (401, "unauthenticated")


def test_an_email_too_long_to_store_is_a_validation_error(authed_client, account):
    email = "a" * 250 + "@b.example"
    response = authed_client.put("/api/v1/accounts/acme", {"email": email}, format="json")
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_a_key_bound_to_an_account_cannot_change_its_plan(api_client, account):
    PlanFactory(code="enterprise")
    _, raw = create_api_key(name="tenant", scopes=["accounts:write"], account=account)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api_client.put("/api/v1/accounts/acme", {"plan": "enterprise"}, format="json")
    assert (response.status_code, error_code(response)) == (403, "permission_denied")
    assert (
        api_client.put("/api/v1/accounts/acme", {"name": "Acme"}, format="json").status_code == 200
    )


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_with_redis_down_requests_are_served_uncounted(authed_client):
    assert authed_client.get("/api/v1/plans").status_code == 200


def test_a_rate_limit_of_zero_blocks_the_key(api_client):
    _, raw = create_api_key(name="blocked", scopes=["usage:read"], rate_limit_per_minute=0)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api_client.get("/api/v1/plans").status_code == 429
