"""The account page's plan in the admin (apps/billing/admin.py, plan_changes.py): Finance puts
an account on a plan or changes it (now, or at period end) and cancels or resumes it, each
through a page that says what will happen, recorded with who and why; a Stripe subscription
is changed at Stripe. Pricing and Support may not; bad input is a message, never a 500."""

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from apps.accounts.models import Subscription
from apps.catalog.models import Plan
from apps.periods.services import put_account_on_plan, renew_due_subscriptions
from apps.wallets.models import CreditGrant
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    PlanAllowanceFactory,
    PlanFactory,
    UserFactory,
)
from tests.ledger import assert_ledger_sound, wallet_of
from tests.stripe_helpers import checkout, pay

pytestmark = pytest.mark.django_db
D = Decimal


def url(account, view):
    return f"/admin/accounts/account/{account.pk}/{view}/"


def text_of(response):
    """The page's text without tags or doubled spaces."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))
    return re.sub(r"\s+", " ", text)


@pytest.fixture
def credit_type(db):
    return CreditTypeFactory(code="credits")


@pytest.fixture
def starter(credit_type):
    plan = PlanFactory(code="starter", name="Starter", price=D("12.00"))
    PlanAllowanceFactory(plan=plan, credit_type=credit_type, credits_per_period=D(10000))
    return plan


@pytest.fixture
def growth(credit_type):
    plan = PlanFactory(code="growth", name="Growth", price=D("49.00"))
    PlanAllowanceFactory(plan=plan, credit_type=credit_type, credits_per_period=D(50000))
    return plan


@pytest.fixture
def finance(client):
    user = UserFactory(username="fiona", groups=["Finance"])
    client.force_login(user)
    return user


def change_plan(client, account, plan, when, *, reason="Ticket 42", confirm=True):
    """Fill in the form, then (if `confirm`) press Confirm on the page it leads to."""
    data = {"plan": plan.pk, "when": when, "reason": reason}
    shown = client.post(url(account, "change-plan"), data)
    assert shown.status_code == 200, shown.content.decode()[:3000]
    if not confirm:
        return shown
    return client.post(url(account, "change-plan"), {**data, "confirm": "Confirm"})


def live(account):
    return Subscription.objects.get(account=account, status__in=Subscription.LIVE_STATUSES)


def test_finance_puts_an_account_without_a_plan_on_one_and_its_credits_are_granted(
    client, finance, starter, credit_type
):
    account = AccountFactory(external_id="acme")
    page = client.get(f"/admin/accounts/account/{account.pk}/change/")
    assert url(account, "change-plan") in page.content.decode()
    form = client.get(url(account, "change-plan"))
    assert "Starter (12.00 USD / month) [starter]" in text_of(form)
    assert 'value="period_end"' not in form.content.decode()  # no plan: now only

    shown = change_plan(client, account, starter, "now", confirm=False)
    said = text_of(shown)
    assert "Current plan no plan" in said and "New plan Starter (12.00 USD / month)" in said
    assert "invoiced by hand" in said and "Granted now: 10,000 credits (credits)" in said
    assert not Subscription.objects.filter(account=account).exists()  # nothing until Confirm

    done = change_plan(client, account, starter, "now")
    assert done.status_code == 302 and done["Location"].endswith(f"/{account.pk}/change/")
    subscription = live(account)
    assert subscription.plan == starter and subscription.stripe_subscription_id is None
    grant = CreditGrant.objects.get(account=account, source=CreditGrant.Source.PLAN_PERIOD)
    assert grant.amount == D(10000) and wallet_of(account, credit_type).balance == D(10000)
    record = subscription.history.latest("history_id")
    assert (record.history_user, record.history_change_reason) == (finance, "Ticket 42")
    assert_ledger_sound(account)


def test_finance_changes_a_manual_plan_now(client, finance, starter, growth, credit_type):
    account = AccountFactory()
    before = put_account_on_plan(account=account, plan=starter)

    shown = text_of(change_plan(client, account, growth, "now", confirm=False))
    assert "Starter ends now, as at a period end" in shown
    assert "Granted now: 50,000 credits (credits)" in shown
    change_plan(client, account, growth, "now")

    before.refresh_from_db()
    assert before.status == Subscription.Status.CANCELED
    assert live(account).plan == growth
    assert CreditGrant.objects.filter(account=account, plan=growth, amount=50000).exists()
    assert before.history.latest("history_id").history_user == finance
    assert_ledger_sound(account)


def test_a_change_at_period_end_is_scheduled_and_the_renewal_applies_it(
    client, finance, starter, growth, credit_type, time_machine
):
    account = AccountFactory()
    subscription = put_account_on_plan(account=account, plan=starter)

    shown = text_of(change_plan(client, account, growth, "period_end", confirm=False))
    assert "Nothing changes before the period end" in shown
    change_plan(client, account, growth, "period_end")

    subscription.refresh_from_db()
    assert (subscription.plan, subscription.scheduled_plan) == (starter, growth)
    assert wallet_of(account, credit_type).balance == D(10000)  # nothing granted yet
    assert subscription.history.latest("history_id").history_change_reason == "Ticket 42"

    time_machine.move_to(subscription.current_period_end + timedelta(minutes=1), tick=False)
    renew_due_subscriptions()
    subscription.refresh_from_db()
    assert (subscription.plan, subscription.scheduled_plan) == (growth, None)
    assert CreditGrant.objects.filter(account=account, plan=growth, amount=50000).exists()
    assert_ledger_sound(account)


def test_finance_cancels_at_period_end_and_resumes(client, finance, starter):
    account = AccountFactory()
    subscription = put_account_on_plan(account=account, plan=starter)

    page = client.get(url(account, "cancel-plan"))
    assert "lapses without rolling over" in text_of(page)
    assert client.post(url(account, "cancel-plan"), {}).status_code == 200  # a reason is needed
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end

    done = client.post(url(account, "cancel-plan"), {"reason": "Customer asked, ticket 7"})
    assert done.status_code == 302
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end
    record = subscription.history.latest("history_id")
    assert (record.history_user, record.history_change_reason) == (
        finance,
        "Customer asked, ticket 7",
    )
    # Cancelling twice says so; a change at period end is refused until resumed.
    again = client.get(url(account, "cancel-plan"), follow=True)
    assert "already ends at the period end" in text_of(again)

    client.post(url(account, "resume-plan"), {"reason": "Changed their mind"})
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end


@pytest.mark.parametrize("group", ["Pricing", "Support"])
def test_pricing_and_support_may_not_change_a_plan(client, group, starter, growth):
    account = AccountFactory()
    subscription = put_account_on_plan(account=account, plan=starter)
    client.force_login(UserFactory(groups=[group]))
    page = client.get(f"/admin/accounts/account/{account.pk}/change/").content.decode()
    assert "change-plan" not in page and "cancel-plan" not in page
    for view, data in (
        ("change-plan", {"plan": growth.pk, "when": "now", "reason": "x", "confirm": "Confirm"}),
        ("cancel-plan", {"reason": "x"}),
        ("resume-plan", {"reason": "x"}),
    ):
        assert client.get(url(account, view)).status_code == 403
        assert client.post(url(account, view), data).status_code == 403
    subscription.refresh_from_db()
    assert (subscription.status, subscription.plan, subscription.cancel_at_period_end) == (
        Subscription.Status.ACTIVE,
        starter,
        False,
    )


def test_bad_input_gives_a_message_and_changes_nothing(client, finance, starter, growth):
    account = AccountFactory()
    subscription = put_account_on_plan(account=account, plan=starter)

    # The same plan now would restart the period: a domain error, shown as a message.
    same = change_plan(client, account, starter, "now", confirm=False)
    assert "already on starter" in text_of(same)
    # An inactive plan, an unknown one, no reason, a forged "when": the form says so.
    growth.active = False
    growth.save()
    for data in (
        {"plan": growth.pk, "when": "now", "reason": "x", "confirm": "Confirm"},
        {"plan": 999999, "when": "now", "reason": "x", "confirm": "Confirm"},
        {"plan": starter.pk, "when": "later", "reason": "x", "confirm": "Confirm"},
        {"plan": starter.pk, "when": "period_end", "reason": "", "confirm": "Confirm"},
    ):
        response = client.post(url(account, "change-plan"), data)
        assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert client.post(url(account, "change-plan"), {}).status_code == 200  # the empty form
    assert client.get("/admin/accounts/account/not-an-id/change-plan/").status_code == 404
    # Canceled at period end: a change at period end waits for a resume.
    client.post(url(account, "cancel-plan"), {"reason": "x"})
    refused = change_plan(client, account, PlanFactory(code="p3"),
                          "period_end", confirm=True)  # fmt: skip
    assert refused.status_code == 200 and "resume it first" in text_of(refused)
    subscription.refresh_from_db()
    assert (subscription.plan, subscription.scheduled_plan) == (starter, None)
    assert Subscription.objects.filter(account=account).count() == 1


# --- a Stripe subscription: changed at Stripe, settled by its webhook ------------------------


@pytest.fixture
def plans(pack):
    from apps.billing.catalog_sync import sync_stripe_catalog

    found = {}
    for code, price in (("pro", "20.00"), ("team", "50.00")):
        plan = PlanFactory(code=code, name=code.title(), price=D(price))
        PlanAllowanceFactory(plan=plan, credit_type=pack.credit_type, credits_per_period=D(1000))
        found[code] = plan
    sync_stripe_catalog()
    return {code: Plan.objects.get(pk=plan.pk) for code, plan in found.items()}


@pytest.fixture
def subscribed(authed_client, account, plans, offline_stripe, webhook, stripe_events):
    pay(offline_stripe, checkout(authed_client, account, plan="pro"))
    webhook.deliver(stripe_events.take())
    return live(account)


def test_a_stripe_subscriptions_plan_is_changed_at_stripe(
    client, finance, account, plans, subscribed, offline_stripe, webhook, stripe_events
):
    form = client.get(url(account, "change-plan")).content.decode()
    assert 'value="period_end"' in form and 'value="now"' not in form  # Stripe: period end

    shown = text_of(change_plan(client, account, plans["team"], "period_end", confirm=False))
    assert "Through Stripe (settled by its webhook)" in shown
    assert f"Stripe's subscription {subscribed.stripe_subscription_id} moves to Team's" in shown
    done = change_plan(client, account, plans["team"], "period_end")
    assert done.status_code == 302
    webhook.deliver(stripe_events.take())  # customer.subscription.updated: the new price

    stripe_sub = offline_stripe.get("subscription", subscribed.stripe_subscription_id)
    assert stripe_sub["items"]["data"][0]["price"]["id"] == plans["team"].stripe_price_id
    subscribed.refresh_from_db()
    assert (subscribed.plan.code, subscribed.scheduled_plan.code) == ("pro", "team")
    assert subscribed.history.filter(history_user=finance).exists()
    assert_ledger_sound(account)


def test_a_stripe_subscription_is_canceled_at_stripe_and_settled_by_its_webhook(
    client, finance, account, subscribed, offline_stripe, webhook, stripe_events
):
    page = text_of(client.get(url(account, "cancel-plan")))
    assert "Through Stripe" in page
    done = client.post(url(account, "cancel-plan"), {"reason": "Ticket 9"}, follow=True)
    assert "changed at Stripe" in text_of(done)
    stripe_sub = offline_stripe.get("subscription", subscribed.stripe_subscription_id)
    assert stripe_sub["cancel_at_period_end"] is True
    subscribed.refresh_from_db()
    assert not subscribed.cancel_at_period_end  # until Stripe's event comes
    webhook.deliver(stripe_events.take())
    subscribed.refresh_from_db()
    assert subscribed.cancel_at_period_end


def test_stripe_unreachable_is_a_message_and_leaves_the_plan_as_it_was(
    client, finance, account, plans, subscribed, offline_stripe, monkeypatch
):
    import stripe

    monkeypatch.setattr(stripe, "api_base", "http://127.0.0.1:9")  # no answer from Stripe
    refused = change_plan(client, account, plans["team"], "period_end")
    assert refused.status_code == 200 and "Stripe:" in text_of(refused)
    subscribed.refresh_from_db()
    assert (subscribed.plan.code, subscribed.scheduled_plan) == ("pro", None)
    monkeypatch.setattr(stripe, "api_base", offline_stripe.url)
    stripe_sub = offline_stripe.get("subscription", subscribed.stripe_subscription_id)
    assert stripe_sub["items"]["data"][0]["price"]["id"] == plans["pro"].stripe_price_id


def test_the_confirmation_says_a_plan_with_a_trial_starts_with_it(
    client, finance, starter, credit_type
):
    Plan.objects.filter(pk=starter.pk).update(trial_days=14)
    starter.allowances.update(trial_credits=D(500))
    account = AccountFactory(external_id="acme")
    said = text_of(change_plan(client, account, starter, "now", confirm=False))
    assert "It starts with its 14-day trial" in said and "500 credits (credits) free now" in said
    assert "Granted now" not in said
    change_plan(client, account, starter, "now")
    assert live(account).status == Subscription.Status.TRIALING
