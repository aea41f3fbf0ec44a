"""PUT / GET / DELETE accounts/{id}/contract, and a contract's terms on every path the API
offers: check, consume (both engines, straight and through the fast lane), batch,
reservations and entitlements; its end returns the account to its plan."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.catalog.models import Contract
from tests.api.conftest import error_code
from tests.factories import AccountFactory, FeatureFactory, PlanFactory
from tests.ledger import D, give, priced_account

pytestmark = pytest.mark.django_db

URL = "/api/v1/accounts/acme/contract"


@pytest.fixture
def account():
    """On a plan where api_call costs 2 with a quota of 10 a period and no overage."""
    plan = PlanFactory(code="pro")
    account, _ = priced_account(
        external_id="acme", plan=plan, plan_feature={"credits_per_unit": D(2),
                                                     "limit_per_period": D(10)},
    )  # fmt: skip
    give(account, 100)
    return account


def put(client, body):
    return client.put(URL, body, format="json")


def test_a_contract_is_created_read_back_replaced_and_removed(authed_client, account):
    body = {
        "price": "1200.00", "currency": "USD", "included_credits": {"credits": "5000"},
        "features": [{"feature": "api_call", "credits_per_unit": "0.5",
                      "limit_per_period": None}],
        "overage": {"policy": "allow", "limit": "50", "unit_price": "0.01"},
        "reason": "Enterprise deal #42",
    }  # fmt: skip
    created = put(authed_client, body)
    assert created.status_code == 201, created.json()
    read = authed_client.get(URL).json()
    assert read == created.json()
    assert {k: read[k] for k in ("account", "state", "price", "currency", "included_credits",
                                 "features", "overage", "ends_at")} == {
        "account": "acme", "state": "live", "price": "1200.00", "currency": "USD",
        "included_credits": {"credits": "5000"},
        "features": [{"feature": "api_call", "credits_per_unit": "0.5",
                      "limit_per_period": None}],
        "overage": {"policy": "allow", "limit": "50", "unit_price": "0.01"},
        "ends_at": None,
    }  # fmt: skip

    replaced = put(authed_client, {"features": [{"feature": "api_call", "enabled": False}]})
    assert replaced.status_code == 200
    assert "price" not in replaced.json() and "overage" not in replaced.json()
    assert replaced.json()["features"] == [{"feature": "api_call", "enabled": False}]

    history = Contract.history.filter(account_id=account.pk).order_by("history_id")
    assert [h.history_change_reason for h in history][0].endswith(": Enterprise deal #42")
    assert authed_client.delete(URL).status_code == 204
    assert authed_client.get(URL).status_code == 404
    assert error_code(authed_client.get(URL)) == "contract_not_found"
    assert error_code(authed_client.delete(URL)) == "contract_not_found"
    assert Contract.history.filter(account_id=account.pk, history_type="-").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "10.00", "overage": {"unit_price": "0.1"}}, "currency"),
        ({"price": "10.00", "currency": "USD"}, "overage.unit_price"),
        ({"currency": "EUR"}, "currency"),
        ({"price": "10.005", "currency": "USD"}, "price"),
        ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": "2030-02-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": "2030-02-01T00:00:00"}, "starts_at"),
        ({"features": [{"feature": "nope", "enabled": True}]}, "features[0].feature"),
        ({"features": [{"feature": "api_call"}]}, "features[0].feature"),
        ({"features": [{"feature": "api_call", "enabled": None}]}, "features[0].enabled"),
        ({"features": [{"feature": "api_call", "credits_per_unit": "-1"}]},
         "features[0].credits_per_unit"),
        ({"included_credits": {"gold": "5"}}, "included_credits.gold"),
        ({"overage": {"policy": "block", "limit": "5"}}, "overage.limit"),
        ({"overage": {"policy": "sometimes"}}, "overage.policy"),
        ({"overage": {"limit": "5"}}, "overage.limit"),
        ({"features": [{"feature": "retired", "enabled": True}]}, "features[0].feature"),
        ({"features": [{"feature": "sso", "credits_per_unit": "1"}]},
         "features[0].credits_per_unit"),
        ({"ends_at": "9999-12-31T23:59:59-01:00"}, "ends_at"),
        ({"include_credits": {"credits": "5"}}, "include_credits"),
        ({"reason": 7}, "reason"),
    ],
)  # fmt: skip
def test_a_contract_that_breaks_a_rule_is_refused_naming_the_field(
    authed_client, account, body, field
):
    FeatureFactory(code="retired", active=False)
    FeatureFactory(code="sso", kind="boolean", credit_type=None)
    response = put(authed_client, body)
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"
    assert field in response.json()["error"]["details"]
    assert not Contract.objects.exists()


def test_only_a_service_key_sets_a_contract_and_a_bound_key_reads_its_own(client_with, account):
    bound = client_with("accounts:write", account=account)
    assert bound.put(URL, {"price": "1.00", "currency": "USD"}, format="json").status_code == 403
    assert error_code(bound.get(URL)) == "contract_not_found"
    reader = client_with("usage:read")
    assert reader.get(URL).status_code == 403


def test_an_unknown_account_has_no_contract(authed_client):
    response = authed_client.put("/api/v1/accounts/ghost/contract", {}, format="json")
    assert error_code(response) == "account_not_found"


# --- the terms on every path ------------------------------------------------------------------


@pytest.fixture
def on_contract(authed_client, account):
    """api_call at 0.5 with a quota of 3, and an overdraft of 20 the plan does not allow."""
    response = put(authed_client, {
        "features": [{"feature": "api_call", "credits_per_unit": "0.5", "limit_per_period": "3"}],
        "overage": {"policy": "allow", "limit": "20"},
        "ends_at": (timezone.now() + timedelta(days=3)).isoformat(),
    })  # fmt: skip
    assert response.status_code == 201, response.json()
    return account


def consume(client, quantity, **extra):
    body = {"account": "acme", "feature": "api_call", "quantity": str(quantity), **extra}
    return client.post("/api/v1/consume", body, format="json")


def test_check_and_entitlements_say_what_the_contract_sets(authed_client, on_contract):
    check = authed_client.post(
        "/api/v1/check", {"account": "acme", "feature": "api_call", "quantity": "2"},
        format="json",
    ).json()  # fmt: skip
    assert (check["allowed"], check["credits_required"]) == (True, "1.000000")
    over = authed_client.post(
        "/api/v1/check", {"account": "acme", "feature": "api_call", "quantity": "4"},
        format="json",
    ).json()  # fmt: skip
    assert (over["allowed"], over["reason"]) == (False, "quota_exceeded")
    (feature,) = authed_client.get("/api/v1/accounts/acme/entitlements").json()["features"]
    assert (feature["source"], feature["credits_per_unit"], feature["limit_per_period"]) == (
        "contract", "0.500000", "3.000000",
    )  # fmt: skip


@pytest.mark.postgres  # both consume engines
def test_consume_charges_the_contract_price_and_stops_at_its_quota(
    authed_client, on_contract, consume_path
):
    charged = consume(authed_client, 2)
    assert (charged.status_code, charged.json()["credits"]) == (201, "1.000000")
    refused = consume(authed_client, 2)
    assert (refused.status_code, error_code(refused)) == (403, "quota_exceeded")


@pytest.mark.postgres
def test_the_contract_overdraft_lets_the_balance_go_below_zero(
    authed_client, account, consume_path
):
    put(authed_client, {
        "features": [{"feature": "api_call", "credits_per_unit": "50", "limit_per_period": None}],
        "overage": {"policy": "allow", "limit": "20"},
    })  # fmt: skip
    charged = consume(authed_client, 2)  # 100 credits, 100 held
    assert (charged.status_code, charged.json()["balance_after"]) == (201, "0.000000")
    into_overdraft = authed_client.post(
        "/api/v1/consume", {"account": "acme", "feature": "api_call", "quantity": "0.4"},
        format="json",
    )  # fmt: skip
    assert into_overdraft.json()["balance_after"] == "-20.000000"
    assert error_code(consume(authed_client, "0.1")) == "insufficient_credits"


def test_without_a_plan_a_contract_gives_no_overdraft(authed_client, account):
    """Overage is billed at a period's end: an account without a plan has none to bill it."""
    AccountFactory(external_id="payg")
    give_to = authed_client.put(
        "/api/v1/accounts/payg/contract",
        {"overage": {"policy": "allow", "limit": "500"}}, format="json",
    )  # fmt: skip
    assert give_to.status_code == 201
    refused = authed_client.post(
        "/api/v1/consume", {"account": "payg", "feature": "api_call", "quantity": "1"},
        format="json",
    )  # fmt: skip
    assert error_code(refused) == "insufficient_credits"


def test_a_batch_and_a_reservation_are_priced_by_the_contract(authed_client, on_contract):
    events = [{"account": "acme", "feature": "api_call", "quantity": "1"} for _ in range(2)]
    batch = authed_client.post("/api/v1/consume/batch", {"events": events}, format="json")
    assert [r["credits"] for r in batch.json()["results"]] == ["0.500000"] * 2
    hold = authed_client.post(
        "/api/v1/reservations", {"account": "acme", "feature": "api_call", "quantity": "1"},
        format="json",
    )  # fmt: skip
    assert hold.json()["credits_held"] == "0.500000"
    refused = authed_client.post(
        "/api/v1/reservations", {"account": "acme", "feature": "api_call", "quantity": "2"},
        format="json",
    )  # fmt: skip
    assert error_code(refused) == "quota_exceeded"  # 2 used, 2 more is over 3


def test_when_the_contract_ends_the_plan_applies_again(authed_client, on_contract, time_machine):
    time_machine.move_to(timezone.now() + timedelta(days=3, seconds=1))
    charged = consume(authed_client, 4)
    assert (charged.status_code, charged.json()["credits"]) == (201, "8.000000")
    (feature,) = authed_client.get("/api/v1/accounts/acme/entitlements").json()["features"]
    assert (feature["source"], feature["limit_per_period"]) == ("plan:pro@v1", "10.000000")
    assert authed_client.get(URL).json()["state"] == "ended"
