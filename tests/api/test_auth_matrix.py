"""Every endpoint: no key, bad key, revoked, expired → 401; wrong scope → 403; a key bound to
another account → 404."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import ApiKey
from apps.accounts.services import create_api_key, revoke_api_key
from apps.usage.services import reserve
from apps.webhooks.models import WebhookEndpoint
from tests.factories import AccountFactory
from tests.ledger import priced_account

from .conftest import error_code

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    # method, path, body, scope
    ("get", "/api/v1/accounts/acme", None, "usage:read"),
    ("put", "/api/v1/accounts/acme", {"name": "x"}, "accounts:write"),
    ("get", "/api/v1/accounts/acme/balance", None, "usage:read"),
    ("get", "/api/v1/accounts/acme/entitlements", None, "usage:read"),
    ("get", "/api/v1/accounts/acme/ledger", None, "usage:read"),
    ("get", "/api/v1/accounts/acme/usage", None, "usage:read"),
    ("post", "/api/v1/accounts/acme/grants", {"amount": 1, "source": "promo", "reason": "r"},
     "grants:write"),
    ("post", "/api/v1/accounts/acme/checkout", {}, "accounts:write"),
    ("post", "/api/v1/accounts/acme/billing-link", {}, "accounts:write"),
    ("post", "/api/v1/check", {"account": "acme", "feature": "api_call"}, "usage:write"),
    ("post", "/api/v1/consume", {"account": "acme", "feature": "api_call"}, "usage:write"),
    ("post", "/api/v1/consume/batch", {"events": [{"account": "acme", "feature": "api_call"}]},
     "usage:write"),
    ("post", "/api/v1/reservations", {"account": "acme", "feature": "api_call", "quantity": 1},
     "usage:write"),
    ("get", "/api/v1/reservations/{rid}", None, "usage:read"),
    ("post", "/api/v1/reservations/{rid}/commit", {"quantity": 1}, "usage:write"),
    ("post", "/api/v1/reservations/{rid}/release", {}, "usage:write"),
    ("get", "/api/v1/plans", None, None),
    ("get", "/api/v1/credit-packs", None, None),
    ("get", "/api/v1/features", None, None),
    ("post", "/api/v1/webhook-endpoints", {"account": "acme", "url": "https://h.example.com/in"},
     "webhooks:write"),
    ("get", "/api/v1/webhook-endpoints/{wid}", None, "webhooks:write"),
    ("delete", "/api/v1/webhook-endpoints/{wid}", None, "webhooks:write"),
    ("post", "/api/v1/webhook-endpoints/{wid}/rotate-secret", {}, "webhooks:write"),
]  # fmt: skip
IDS = [f"{m.upper()} {p}" for m, p, _, _ in ENDPOINTS]
ALL = ["usage:read", "usage:write", "accounts:write", "grants:write", "webhooks:write"]


@pytest.fixture
def world():
    account, _ = priced_account(credits=10, external_id="acme")
    reservation, _ = reserve(account=account, feature="api_call", quantity=1)
    endpoint = WebhookEndpoint.objects.create(account=account, url="https://h.example.com/in")
    return account, reservation, endpoint


def call(client, method, path, body, world, key=None):
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    path = path.format(rid=world[1].pk, wid=world[2].pk)
    return (
        getattr(client, method)(path, body, format="json")
        if body is not None
        else getattr(client, method)(path)
    )


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS, ids=IDS)
def test_without_a_usable_key_every_endpoint_is_401(api_client, world, method, path, body,
                                                    scope):  # fmt: skip
    assert error_code(call(api_client, method, path, body, world)) == "unauthenticated"
    bad = call(api_client, method, path, body, world, key="cdk_nothere_" + "x" * 40)
    assert (bad.status_code, error_code(bad)) == (401, "unauthenticated")
    revoked, raw = create_api_key(name="old", scopes=ALL)
    revoke_api_key(api_key=revoked)
    assert call(api_client, method, path, body, world, key=raw).status_code == 401
    expired, raw = create_api_key(name="old", scopes=ALL)
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert call(api_client, method, path, body, world, key=raw).status_code == 401


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS, ids=IDS)
def test_a_key_without_the_scope_is_403(api_client, world, method, path, body, scope):
    if scope is None:
        pytest.skip("any valid key may read the catalog")
    others = [s for s in ALL if s != scope and not (scope == "usage:read" and s == "usage:write")]
    _, raw = create_api_key(name="narrow", scopes=others)
    response = call(api_client, method, path, body, world, key=raw)
    assert (response.status_code, error_code(response)) == (403, "permission_denied")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS, ids=IDS)
def test_a_key_bound_to_another_account_sees_404(api_client, world, method, path, body, scope):
    if scope in (None, "grants:write"):
        pytest.skip("catalog is not per account; grants:write keys cannot be bound")
    other = AccountFactory(external_id="other")
    _, raw = create_api_key(name="bound", scopes=[s for s in ALL if s != "grants:write"],
                            account=other)  # fmt: skip
    response = call(api_client, method, path, body, world, key=raw)
    if path.endswith("batch"):
        [result] = response.json()["results"]
        assert (result["status"], result["error"]["code"]) == (404, "account_not_found")
    else:
        assert response.status_code == 404, response.json()
        assert error_code(response) in ("account_not_found", "not_found")


def test_a_bound_key_works_on_its_own_account(api_client, world):
    _, raw = create_api_key(name="bound", scopes=["usage:write"], account=world[0])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api_client.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                               format="json")  # fmt: skip
    assert response.status_code == 201


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(api_client):
    _, raw = create_api_key(name="slow", scopes=["usage:read"], rate_limit_per_minute=2)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    statuses = [api_client.get("/api/v1/plans").status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    limited = api_client.get("/api/v1/plans")
    assert (limited.status_code, error_code(limited)) == (429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
