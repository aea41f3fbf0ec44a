"""A renewal watched in the demo, end to end: consume over the API, move the demo clock past
the period end (`advance_clock`), run the jobs as a user would (`run_period_jobs`), and the
renewal, the rollover and the expired rest are in the ledger at the moved time."""

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import Subscription
from apps.catalog.models import Plan
from apps.core import clock
from apps.jobs.models import JobRun
from apps.wallets.models import CreditGrant
from tests.factories import CreditTypeFactory, FeatureFactory
from tests.ledger import assert_ledger_sound, give, wallet_of

from .conftest import D, entries, grants, monthly_plan, subscribed


def test_a_renewal_in_the_demo_after_advance_clock_and_run_period_jobs(db, authed_client):
    FeatureFactory(code="api_call", credit_type=CreditTypeFactory())
    account, subscription = subscribed(
        monthly_plan(credits=1000, percent=50, cap=150), external_id="demo-1"
    )
    for _ in range(3):
        response = authed_client.post(
            "/api/v1/consume",
            {"account": "demo-1", "feature": "api_call", "quantity": "100"},
            format="json",
        )
        assert response.status_code == 201, response.json()
    pack = give(account, 40, days=20, source=CreditGrant.Source.PURCHASE)  # bought, not used
    first_end = subscription.current_period_end

    call_command("advance_clock", "--days", "31", stdout=StringIO())
    moved = clock.now()
    assert moved > first_end > timezone.now()
    out = StringIO()
    call_command("run_period_jobs", stdout=out)

    assert "renew_due_subscriptions: succeeded" in out.getvalue()
    subscription = Subscription.objects.get(pk=subscription.pk)
    assert subscription.current_period_start == first_end
    assert subscription.current_period_end > moved
    [ended, renewed] = grants(account, CreditGrant.Source.PLAN_PERIOD)
    assert (ended.remaining, renewed.amount, renewed.remaining) == (0, D(1000), D(1000))
    [rollover] = grants(account, CreditGrant.Source.ROLLOVER)
    assert rollover.amount == D(150)  # 50 % of the 700 left is 350: the cap of 150 binds
    pack.refresh_from_db()
    assert pack.remaining == 0  # expired unused on day 20: breakage
    expired = entries(account, "expire")
    assert sorted(-e.amount for e in expired) == [D(40), D(550)]
    assert all(e.created_at > timezone.now() + timedelta(days=30) for e in expired)
    assert wallet_of(account).balance == D(1150)
    run = JobRun.objects.get(job="renew_due_subscriptions")
    assert run.as_of >= moved

    [wallet] = authed_client.get("/api/v1/accounts/demo-1/balance").json()["wallets"]
    assert wallet["available"] == "1150.000000"  # the API reads the moved clock too
    assert_ledger_sound()


def test_a_trial_and_a_contract_in_the_demo_after_advance_clock(db, authed_client):
    """A 14-day trial converts on day 15 into a paid period with the contract's credits; the
    contract ends on day 20 and consumes cost the plan's price again."""
    FeatureFactory(code="api_call", credit_type=CreditTypeFactory())
    plan = monthly_plan(credits=1000, credits_per_unit=D(2))
    plan.allowances.update(trial_credits=D(100))
    Plan.objects.filter(pk=plan.pk).update(trial_days=14)
    plan.refresh_from_db()
    account, subscription = subscribed(plan, external_id="demo-2")
    assert subscription.status == Subscription.Status.TRIALING
    ends_at = (clock.now() + timedelta(days=20)).isoformat()
    signed = authed_client.put(
        "/api/v1/accounts/demo-2/contract",
        {"included_credits": {"credits": "5000"}, "ends_at": ends_at,
         "features": [{"feature": "api_call", "credits_per_unit": "0.5"}]},
        format="json",
    )  # fmt: skip
    assert signed.status_code == 201, signed.json()

    def consume(quantity):
        body = {"account": "demo-2", "feature": "api_call", "quantity": quantity}
        return authed_client.post("/api/v1/consume", body, format="json").json()

    assert consume("10")["credits"] == "5.000000"  # the contract's price, from trial credits

    call_command("advance_clock", "--days", "15", stdout=StringIO())
    call_command("run_period_jobs", stdout=StringIO())
    account_body = authed_client.get("/api/v1/accounts/demo-2").json()
    assert account_body["subscription_status"] == "active"
    paid = grants(account, CreditGrant.Source.PLAN_PERIOD)[-1]
    assert paid.amount == D(5000)  # the contract's included credits
    assert wallet_of(account).balance == D(5000)  # the trial's 95 left expired with it

    call_command("advance_clock", "--days", "6", stdout=StringIO())  # day 21: the contract ended
    assert consume("10")["credits"] == "20.000000"  # the plan's price again
    assert authed_client.get("/api/v1/accounts/demo-2/contract").json()["state"] == "ended"
    assert_ledger_sound()
