"""Accounts, balances, entitlements, ledger and usage over the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.usage.services import consume, reserve
from tests.factories import PlanFactory, PlanFeatureFactory
from tests.ledger import D, give, priced_account

from .conftest import error_code

pytestmark = pytest.mark.django_db


def test_put_creates_then_updates_an_account(authed_client):
    PlanFactory(code="pro")
    created = authed_client.put(
        "/api/v1/accounts/acme:1", {"name": "Acme", "plan": "pro"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert (created.json()["name"], created.json()["plan"]) == ("Acme", "pro")
    updated = authed_client.put("/api/v1/accounts/acme:1", {"email": "a@acme.test"},
                                format="json")  # fmt: skip
    assert (updated.status_code, updated.json()["email"]) == (200, "a@acme.test")
    fetched = authed_client.get("/api/v1/accounts/acme:1").json()
    assert set(fetched) == {"external_id", "name", "email", "status", "plan", "plan_version",
                            "subscription_status", "current_period_start",
                            "current_period_end", "metadata", "created_at"}  # fmt: skip
    assert (fetched["plan"], fetched["plan_version"], fetched["subscription_status"]) == (
        "pro", 1, "active",
    )  # fmt: skip


def test_put_with_an_unknown_plan_writes_nothing(authed_client):
    response = authed_client.put("/api/v1/accounts/new-1", {"plan": "ghost"}, format="json")
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert authed_client.get("/api/v1/accounts/new-1").status_code == 404


def test_balance_lists_wallets_with_spendable_grants_and_next_expiry(authed_client):
    account, _ = priced_account(external_id="acme")
    soon = give(account, 10, days=3)
    give(account, 5)
    reserve(account=account, feature="api_call", quantity=2)
    body = authed_client.get("/api/v1/accounts/acme/balance").json()
    [wallet] = body["wallets"]
    assert {k: wallet[k] for k in ("credit_type", "balance", "held", "available",
                                   "overdraft_limit")} == {
        "credit_type": "credits", "balance": "15.000000", "held": "2.000000",
        "available": "13.000000", "overdraft_limit": "0.000000",
    }  # fmt: skip
    assert [g["id"] for g in wallet["grants"]] == [soon.pk, soon.pk + 1]
    assert wallet["next_expiry"]["credits"] == "10.000000"


def test_balance_at_a_moment_is_rebuilt_from_the_ledger(authed_client, time_machine):
    account, _ = priced_account(external_id="acme")
    give(account, 10)
    moment = timezone.now()
    time_machine.move_to(moment + timedelta(hours=1))
    consume(account=account, feature="api_call", quantity=4)
    then = authed_client.get("/api/v1/accounts/acme/balance", {"at": moment.isoformat()}).json()[
        "wallets"
    ][0]
    now = authed_client.get("/api/v1/accounts/acme/balance").json()["wallets"][0]
    assert (then["balance"], now["balance"]) == ("10.000000", "6.000000")
    assert then["grants"][0]["remaining"] == "10.000000"


def test_entitlements_show_plan_terms_and_use_this_period(authed_client):
    plan = PlanFactory(code="pro")
    account, feature = priced_account(
        credits=100, plan=plan, plan_feature={"limit_per_period": D(10)}, external_id="acme"
    )
    consume(account=account, feature="api_call", quantity=3)
    body = authed_client.get("/api/v1/accounts/acme/entitlements").json()
    assert (body["plan"], body["plan_version"]) == ("pro", 1) and body["period_end"]
    [row] = [f for f in body["features"] if f["feature"] == "api_call"]
    assert row == {
        "feature": "api_call", "kind": "metered", "enabled": True, "credit_type": "credits",
        "credits_per_unit": "1.000000", "limit_per_period": "10.000000",
        "used_this_period": "3.000000", "source": "plan:pro@v1",
    }  # fmt: skip


def test_ledger_pages_newest_first_with_a_cursor(authed_client):
    account, _ = priced_account(credits=10, external_id="acme")
    for _ in range(3):
        consume(account=account, feature="api_call")
    first = authed_client.get("/api/v1/accounts/acme/ledger", {"limit": 2}).json()
    assert [e["kind"] for e in first["results"]] == ["consume", "consume"]
    rest = authed_client.get(
        "/api/v1/accounts/acme/ledger", {"limit": 2, "cursor": first["next"]}
    ).json()
    assert [e["kind"] for e in rest["results"]] == ["consume", "grant"]
    assert rest["next"] is None
    grants = authed_client.get("/api/v1/accounts/acme/ledger", {"kind": "grant"}).json()
    assert [e["amount"] for e in grants["results"]] == ["10.000000"]
    bad = authed_client.get("/api/v1/accounts/acme/ledger", {"cursor": "zzz"})
    assert (bad.status_code, error_code(bad)) == (400, "validation_error")


def test_usage_lists_events_or_totals(authed_client):
    account, _ = priced_account(credits=10, external_id="acme")
    consume(account=account, feature="api_call", quantity=2)
    consume(account=account, feature="api_call", quantity=3)
    events = authed_client.get("/api/v1/accounts/acme/usage").json()["events"]
    assert [e["quantity"] for e in events] == ["3.000000", "2.000000"]
    totals = authed_client.get("/api/v1/accounts/acme/usage", {"group_by": "feature"}).json()
    assert totals["totals"] == [{"group": "api_call", "quantity": "5.000000",
                                 "credits": "5.000000"}]  # fmt: skip
    by_day = authed_client.get("/api/v1/accounts/acme/usage", {"group_by": "day"}).json()
    assert by_day["totals"][0]["group"] == timezone.now().date().isoformat()


def test_usage_events_come_a_page_at_a_time(authed_client, time_machine):
    """Newest first, `limit` a page, `next` as the cursor of the next: five events at one
    moment (the id orders them) and one a second later; an event arriving between pages
    does not shift the next page."""
    account, _ = priced_account(credits=100, external_id="acme")
    time_machine.move_to(timezone.now(), tick=False)
    for quantity in range(1, 6):
        consume(account=account, feature="api_call", quantity=quantity)
    time_machine.shift(1)
    consume(account=account, feature="api_call", quantity=6)

    def page(**query):
        body = authed_client.get("/api/v1/accounts/acme/usage", {"limit": 2, **query}).json()
        return [int(D(e["quantity"])) for e in body["events"]], body["next"]

    first, cursor = page()
    assert first == [6, 5]
    consume(account=account, feature="api_call", quantity=7)
    second, cursor = page(cursor=cursor)
    assert second == [4, 3]
    assert page(cursor=cursor) == ([2, 1], None)
    assert authed_client.get("/api/v1/accounts/acme/usage").json()["next"] is None
    for bad in ("b12", "u1.0", "u999999999999999999.1"):
        answer = authed_client.get("/api/v1/accounts/acme/usage", {"cursor": bad})
        assert (answer.status_code, error_code(answer)) == (400, "validation_error"), bad


def test_grants_over_the_api_are_idempotent_by_key(authed_client):
    priced_account(external_id="acme")
    body = {"amount": "25", "source": "promo", "reason": "launch", "idempotency_key": "g1"}
    first = authed_client.post("/api/v1/accounts/acme/grants", body, format="json")
    assert first.status_code == 201, first.json()
    assert (first.json()["amount"], first.json()["remaining"]) == ("25.000000", "25.000000")
    again = authed_client.post("/api/v1/accounts/acme/grants", body, format="json")
    assert (again.status_code, again.json()) == (201, first.json())
    by_header = {k: v for k, v in body.items() if k != "idempotency_key"}
    header = authed_client.post("/api/v1/accounts/acme/grants", by_header, format="json",
                                HTTP_IDEMPOTENCY_KEY="g1")  # fmt: skip
    assert (header.status_code, header.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    other = authed_client.post("/api/v1/accounts/acme/grants", {**body, "amount": "26"},
                               format="json")  # fmt: skip
    assert (other.status_code, error_code(other)) == (409, "idempotency_key_reused")


def test_checkout_needs_an_item_and_urls(authed_client):
    priced_account(external_id="acme")
    response = authed_client.post("/api/v1/accounts/acme/checkout", {}, format="json")
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert set(response.json()["error"]["details"]) >= {"success_url", "cancel_url"}


def test_entitlements_of_an_on_off_feature(authed_client):
    from tests.factories import FeatureFactory

    plan = PlanFactory()
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="sso", kind="boolean",
                                                         credit_type=None))  # fmt: skip
    priced_account(plan=plan, external_id="acme")
    body = authed_client.get("/api/v1/accounts/acme/entitlements").json()
    [sso] = [f for f in body["features"] if f["feature"] == "sso"]
    assert (sso["kind"], sso["enabled"], sso["credits_per_unit"]) == ("boolean", True, None)
