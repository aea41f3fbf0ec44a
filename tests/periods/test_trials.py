"""Trials on a manual plan: the trial's free credits, its conversion by the renewal job into
the first paid period, a trial that ends with a cancellation, and one trial per plan."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.accounts.models import Subscription
from apps.catalog.models import Plan
from apps.core.errors import InsufficientCredits
from apps.periods.services import (
    cancel_at_period_end,
    change_plan_at_period_end,
    put_account_on_plan,
    renew_due_subscriptions,
)
from apps.periods.trials import notify_trials_ending
from apps.wallets.models import CreditGrant
from apps.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.factories import AccountFactory
from tests.ledger import assert_ledger_sound, wallet_of

from .conftest import JAN_31, D, grants, monthly_plan, spend, subscribed

TRIAL_END = JAN_31 + timedelta(days=14)


def trial_plan():
    """30 a month for 1,000 credits, with a 14-day trial of 200 credits."""
    plan = monthly_plan(credits=1000, price="30")
    plan.allowances.update(trial_credits=D(200))
    Plan.objects.filter(pk=plan.pk).update(trial_days=14)
    plan.refresh_from_db()
    return plan


def on_trial():
    account = AccountFactory()
    WebhookEndpoint.objects.create(account=account, url="https://hooks.example.com/in")
    return account, put_account_on_plan(account=account, plan=trial_plan())


def events(account, type):
    return list(
        WebhookEvent.objects.filter(account=account, type=type).values_list("data", flat=True)
    )


def test_a_trial_grants_its_free_credits_until_it_ends_and_no_period(calendar):
    account, subscription = on_trial()
    assert subscription.status == Subscription.Status.TRIALING
    assert (subscription.current_period_start, subscription.current_period_end) == (
        JAN_31, TRIAL_END,
    )  # fmt: skip
    [grant] = grants(account)
    assert (grant.source, grant.amount, grant.expires_at, grant.basis_amount) == (
        CreditGrant.Source.TRIAL, D(200), TRIAL_END, D(0),
    )  # fmt: skip
    spend(account, 150)
    assert wallet_of(account).balance == D(50)


def test_the_renewal_converts_the_trial_into_the_first_paid_period(calendar):
    account, subscription = on_trial()
    spend(account, 50)
    counts = renew_due_subscriptions(now=TRIAL_END)
    subscription.refresh_from_db()
    assert (counts.renewed, subscription.status) == (1, Subscription.Status.ACTIVE)
    assert subscription.current_period_start == TRIAL_END
    assert subscription.current_period_end == datetime(2026, 3, 14, 12, tzinfo=UTC)
    trial, paid = grants(account)
    assert (trial.remaining, paid.source, paid.amount, paid.basis_amount) == (
        D(0), CreditGrant.Source.PLAN_PERIOD, D(1000), D(30),
    )  # fmt: skip
    assert wallet_of(account).balance == D(1000)  # the trial's 150 left expired with it
    [ended] = events(account, "trial.ended")
    assert (ended["converted"], ended["trial_end"]) == (True, TRIAL_END.isoformat())
    assert_ledger_sound()


def test_a_trial_canceled_before_its_end_ends_with_it(calendar):
    account, subscription = on_trial()
    cancel_at_period_end(account=account)
    renew_due_subscriptions(now=TRIAL_END)
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert [g.source for g in grants(account)] == [CreditGrant.Source.TRIAL]
    assert wallet_of(account).balance == D(0)
    [ended] = events(account, "trial.ended")
    assert (ended["converted"], ended["trial_end"]) == (False, TRIAL_END.isoformat())


def test_an_account_gets_a_plan_trial_once(calendar):
    account, subscription = on_trial()
    renew_due_subscriptions(now=TRIAL_END)
    again = put_account_on_plan(account=account, plan=subscription.plan)
    assert again.status == Subscription.Status.ACTIVE
    assert grants(account)[-1].source == CreditGrant.Source.PLAN_PERIOD


def test_trial_ending_is_sent_once_three_days_before_the_end(calendar):
    account, subscription = on_trial()
    assert notify_trials_ending(now=TRIAL_END - timedelta(days=4)).trial_notices == 0
    assert notify_trials_ending(now=TRIAL_END - timedelta(days=3)).trial_notices == 1
    assert notify_trials_ending(now=TRIAL_END - timedelta(days=1)).trial_notices == 0
    [ending] = events(account, "trial.ending")
    assert ending == {
        "account": account.external_id, "subscription": subscription.pk,
        "plan": subscription.plan.code, "trial_end": TRIAL_END.isoformat(),
    }  # fmt: skip
    renew_due_subscriptions(now=TRIAL_END)
    assert notify_trials_ending(now=TRIAL_END + timedelta(days=20)).trial_notices == 0


def test_a_trialing_account_put_on_another_plan_ends_its_trial_at_once(calendar):
    account, subscription = on_trial()
    other = monthly_plan(credits=500, code="other")
    put_account_on_plan(account=account, plan=other)
    trial = grants(account, CreditGrant.Source.TRIAL)[0]
    assert trial.remaining == 0  # expired now, not at the trial's end
    assert wallet_of(account).balance == D(500)
    [ended] = events(account, "trial.ended")
    assert ended["converted"] is False


def test_a_trial_converted_into_a_scheduled_plan_still_counts_as_had(calendar):
    account, subscription = on_trial()
    change_plan_at_period_end(account=account, plan=monthly_plan(credits=500, code="other"))
    renew_due_subscriptions(now=TRIAL_END)  # the subscription row is on "other" now
    again = put_account_on_plan(account=account, plan=Plan.objects.get(pk=subscription.plan_id))
    assert again.status == Subscription.Status.ACTIVE


def test_a_trial_has_no_overdraft_even_on_a_plan_that_allows_overage(calendar):
    plan = trial_plan()
    Plan.objects.filter(pk=plan.pk).update(overage_policy="allow", overage_limit=D(500))
    account = AccountFactory()
    put_account_on_plan(account=account, plan=Plan.objects.get(pk=plan.pk))
    spend(account, 200)
    with pytest.raises(InsufficientCredits):
        spend(account, 1)


def test_a_switch_to_a_trial_rolls_the_old_plans_credits_over_beside_the_trials(calendar):
    """The old plan's rollover and the trial's free credits are written together (one
    statement on PostgreSQL, where the trial's price, an int 0, once broke the write)."""
    account, _ = subscribed(monthly_plan(credits=1000, percent=50, code="old"))
    put_account_on_plan(account=account, plan=trial_plan())
    assert [g.amount for g in grants(account, CreditGrant.Source.ROLLOVER)] == [D(500)]
    assert [g.amount for g in grants(account, CreditGrant.Source.TRIAL)] == [D(200)]
