"""POST accounts/{id}/grants: who made each grant, and API idempotency keys that can never
take a reference the system uses (period renewals, overage, Stripe Checkout)."""

from datetime import UTC, datetime

import pytest

from apps.accounts.services import create_api_key
from apps.periods.services import period_reference, put_account_on_plan, renew_due_subscriptions
from apps.wallets.models import CreditGrant
from tests.factories import AccountFactory, CreditTypeFactory, PlanAllowanceFactory, PlanFactory
from tests.ledger import D, assert_ledger_sound, wallet_of

pytestmark = pytest.mark.django_db
GRANT = {"amount": "25", "source": "promo", "reason": "launch"}


def grant_with(client, key, body, account="acme"):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.post(f"/api/v1/accounts/{account}/grants", body, format="json")


def test_a_grant_made_over_the_api_records_the_key_that_made_it(api_client):
    AccountFactory(external_id="acme")
    CreditTypeFactory()
    key, raw = create_api_key(name="billing service", scopes=["grants:write"])
    response = grant_with(api_client, raw, GRANT)
    assert response.status_code == 201, response.json()
    assert CreditGrant.objects.get(pk=response.json()["id"]).api_key == key


def test_an_idempotency_key_is_per_account_whichever_api_key_sends_it(api_client):
    AccountFactory(external_id="acme")
    CreditTypeFactory()
    first_key, first_raw = create_api_key(name="first", scopes=["grants:write"])
    _, second_raw = create_api_key(name="second", scopes=["grants:write"])
    body = {**GRANT, "idempotency_key": "launch-2026"}
    first = grant_with(api_client, first_raw, body)
    again = grant_with(api_client, second_raw, body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert [g.api_key for g in CreditGrant.objects.all()] == [first_key]


def test_an_idempotency_key_shaped_like_a_period_reference_does_not_block_the_renewal(
    api_client, service_key, time_machine
):
    time_machine.move_to(datetime(2026, 1, 31, 12, tzinfo=UTC), tick=False)
    credits = CreditTypeFactory()
    plan = PlanFactory(billing_interval="month", price=D(30))
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    account = AccountFactory(external_id="acme")
    subscription = put_account_on_plan(account=account, plan=plan)
    renewal = subscription.current_period_end
    squatted = period_reference(subscription.pk, renewal, credits.code)
    response = grant_with(api_client, service_key, {**GRANT, "idempotency_key": squatted})
    assert response.status_code == 201, response.json()

    assert renew_due_subscriptions(now=renewal).renewed == 1

    renewed = CreditGrant.objects.get(account=account, reference=squatted)
    assert (renewed.source, renewed.amount) == ("plan_period", D(1000))
    assert wallet_of(account, credits).balance == D(1000 + 25)  # the first period expired
    assert_ledger_sound()
