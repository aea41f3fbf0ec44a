import pytest

from tests.ledger import D, priced_account, wallet_of

from .conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    account, _ = priced_account(credits=10, external_id="acme")
    return account


def reserve(client, **body):
    return client.post(
        "/api/v1/reservations", {"account": "acme", "feature": "api_call", **body}, format="json"
    )


def test_reserve_then_commit_charges_the_actual_use(authed_client, account):
    held = reserve(authed_client, quantity=5)
    assert held.status_code == 201, held.json()
    assert (held.json()["status"], held.json()["credits_held"]) == ("held", "5.000000")
    rid = held.json()["id"]
    assert authed_client.get(f"/api/v1/reservations/{rid}").json()["status"] == "held"
    committed = authed_client.post(f"/api/v1/reservations/{rid}/commit", {"quantity": 3},
                                   format="json")  # fmt: skip
    assert committed.status_code == 200, committed.json()
    assert committed.json()["reservation"]["status"] == "committed"
    assert committed.json()["usage_event"]["credits"] == "3.000000"
    assert wallet_of(account).balance == D(7)
    again = authed_client.post(f"/api/v1/reservations/{rid}/release")
    assert (again.status_code, error_code(again)) == (409, "reservation_not_held")


def test_release_frees_the_hold(authed_client, account):
    rid = reserve(authed_client, quantity=5).json()["id"]
    released = authed_client.post(f"/api/v1/reservations/{rid}/release")
    assert (released.status_code, released.json()["status"]) == (200, "released")
    assert wallet_of(account).held == D(0)


def test_a_commit_above_the_hold_needs_available_credits(authed_client, account):
    rid = reserve(authed_client, quantity=5).json()["id"]
    response = authed_client.post(f"/api/v1/reservations/{rid}/commit", {"quantity": 11},
                                  format="json")  # fmt: skip
    assert (response.status_code, error_code(response)) == (402, "insufficient_credits")
    assert authed_client.get(f"/api/v1/reservations/{rid}").json()["status"] == "held"


def test_reserve_is_idempotent_by_key(authed_client, account):
    first = reserve(authed_client, quantity=2, idempotency_key="r1")
    again = reserve(authed_client, quantity=2, idempotency_key="r1")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert wallet_of(account).held == D(2)


@pytest.mark.parametrize("ttl", [0, 86401, "x"])
def test_ttl_is_1_to_86400_seconds(authed_client, account, ttl):
    response = reserve(authed_client, quantity=1, ttl_seconds=ttl)
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_unknown_reservations_are_404(authed_client, account):
    response = authed_client.get("/api/v1/reservations/999999")
    assert (response.status_code, error_code(response)) == (404, "not_found")
