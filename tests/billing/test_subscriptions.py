"""A plan bought through Stripe: the subscription follows Stripe's events through dj-stripe's
webhook view — created, renewed by invoice.paid (racing the renewal job), past due with a
grace then suspended, recovered, canceled."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import stripe
from django.db import connection

from apps.accounts.models import Account, Subscription
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.checkout import stripe_customer
from apps.billing.models import PlanCheckout
from apps.billing.subscriptions import suspend_past_due_accounts
from apps.catalog.models import Feature, Plan
from apps.core.errors import AccountSuspended
from apps.periods.services import period_reference, renew_due_subscriptions
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from apps.wallets.services import expire_grants
from apps.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.ledger import assert_ledger_sound, wallet_of
from tests.stripe_helpers import KEY, checkout, control, ours, pay, subscribe

from .conftest import FEB_28, JAN_31, MAR_31

D = Decimal


@pytest.fixture
def plan(db, offline_stripe, time_machine):
    time_machine.move_to(JAN_31, tick=False)
    credits = CreditTypeFactory(code="credits")
    plan = PlanFactory(code="pro", price=D("20.00"), billing_interval="month")
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    feature = FeatureFactory(code="api_call", credit_type=credits)
    PlanFeatureFactory(plan=plan, feature=feature)
    sync_stripe_catalog()
    plan.refresh_from_db()
    return plan


def balance(account):
    return wallet_of(account, Feature.objects.get(code="api_call").credit_type).balance


@pytest.mark.django_db
def test_a_paid_subscription_puts_the_account_on_the_plan_with_stripes_period(
    authed_client, plan, offline_stripe, stripe_events, webhook
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())

    subscription = ours(stripe_id)
    assert subscription.plan == plan
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.current_period_start == JAN_31
    assert subscription.current_period_end == FEB_28
    assert balance(account) == D(1000)
    assert_ledger_sound(account)


@pytest.mark.django_db
def test_events_out_of_order_create_the_subscription_once(
    authed_client, plan, offline_stripe, stripe_events, webhook
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    events = stripe_events.take()
    paid = [e for e in events if e["type"] == "invoice.paid"]
    webhook.deliver(paid + paid + list(reversed(events)))

    assert Subscription.objects.filter(account=account).count() == 1
    assert ours(stripe_id).status == Subscription.Status.ACTIVE
    assert CreditGrant.objects.filter(account=account).count() == 1
    assert balance(account) == D(1000)


@pytest.mark.django_db
def test_invoice_paid_renews_the_period_once(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    consume(account=account, feature="api_call", quantity=D(400))

    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    events = stripe_events.take()
    assert {e["type"] for e in events} >= {"invoice.paid", "customer.subscription.updated"}
    webhook.deliver(events + events)

    subscription = ours(stripe_id)
    assert subscription.current_period_start == FEB_28
    assert subscription.current_period_end == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    assert balance(account) == D(1000)  # 600 left of January expired, February's 1000 granted
    reference = period_reference(subscription.pk, FEB_28, "credits")
    assert CreditGrant.objects.filter(reference=reference).count() == 1

    renew_due_subscriptions(now=FEB_28 + timedelta(hours=3))  # the job finds nothing due
    assert CreditGrant.objects.filter(account=account, source="plan_period").count() == 2
    assert_ledger_sound(account)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.postgres
def test_invoice_paid_racing_the_renewal_job_grants_the_period_once(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    # Stripe's renewal is late: the job's grace has passed when both arrive at once.
    time_machine.move_to(FEB_28 + timedelta(hours=2), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    events = stripe_events.take()

    barrier = threading.Barrier(2)
    failures = []

    def both(run):
        def go():
            barrier.wait()
            try:
                run()
            except Exception as error:  # noqa: BLE001  (asserted below)
                failures.append(error)
            finally:
                connection.close()

        return threading.Thread(target=go)

    threads = [both(renew_due_subscriptions), both(lambda: webhook.deliver(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    subscription = ours(stripe_id)
    assert subscription.current_period_start == FEB_28
    assert CreditGrant.objects.filter(account=account, source="plan_period").count() == 2
    assert balance(account) == D(1000)
    assert_ledger_sound(account)


@pytest.mark.django_db
def test_a_failed_renewal_is_past_due_then_suspended_after_the_grace_then_recovered(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine, settings
):
    settings.STRIPE_PAST_DUE_GRACE_DAYS = 3
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())

    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/fail")
    webhook.deliver(stripe_events.take())

    subscription = ours(stripe_id)
    assert subscription.status == Subscription.Status.PAST_DUE
    assert subscription.past_due_since == FEB_28 + timedelta(minutes=1)
    renew_due_subscriptions(now=FEB_28 + timedelta(days=1))  # no new period from the job
    expire_grants(now=FEB_28 + timedelta(days=1))
    assert balance(account) == D(0)  # January's credits ended with January; none for February

    assert suspend_past_due_accounts(now=FEB_28 + timedelta(days=2)).suspended == 0
    assert suspend_past_due_accounts(now=FEB_28 + timedelta(days=3, hours=1)).suspended == 1
    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED
    with pytest.raises(AccountSuspended):
        consume(account=account, feature="api_call", quantity=1)

    time_machine.move_to(FEB_28 + timedelta(days=4), tick=False)
    invoice = offline_stripe.get("subscription", stripe_id)["latest_invoice"]
    control(offline_stripe, f"invoices/{invoice}/pay")
    webhook.deliver(stripe_events.take())

    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE
    assert ours(stripe_id).status == Subscription.Status.ACTIVE
    assert balance(account) == D(1000)  # February's period, granted on payment
    consume(account=account, feature="api_call", quantity=1)
    assert_ledger_sound(account)


@pytest.mark.django_db
def test_a_staff_suspension_is_not_lifted_by_a_payment(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    Account.objects.filter(pk=account.pk).update(status=Account.Status.SUSPENDED)
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())

    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED


@pytest.mark.django_db
def test_cancel_at_period_end_then_cancel_now(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())

    stripe.Subscription.modify(stripe_id, api_key=KEY, cancel_at_period_end=True)
    webhook.deliver(stripe_events.take())
    assert ours(stripe_id).cancel_at_period_end is True
    stripe.Subscription.modify(stripe_id, api_key=KEY, cancel_at_period_end=False)
    webhook.deliver(stripe_events.take())
    assert ours(stripe_id).cancel_at_period_end is False

    time_machine.move_to(JAN_31 + timedelta(days=1), tick=False)
    stripe.Subscription.cancel(stripe_id, api_key=KEY)
    events = stripe_events.take()
    assert [e["type"] for e in events] == ["customer.subscription.deleted"]
    webhook.deliver(events * 2)

    subscription = ours(stripe_id)
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.current_period_end == JAN_31 + timedelta(days=1)  # now, not Feb 28
    assert balance(account) == D(0)
    assert_ledger_sound(account)


@pytest.mark.django_db
def test_a_subscription_canceled_before_its_events_arrive_is_recorded_with_the_period_paid(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    """Stripe holds events while the endpoint is down (for up to three days) and each is read
    back as canceled; the invoice paid for the period all the same (the Stripe storm)."""
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    time_machine.move_to(JAN_31 + timedelta(hours=3), tick=False)
    stripe.Subscription.cancel(stripe_id, api_key=KEY)
    events = stripe_events.take()
    webhook.deliver(list(reversed(events)) + events)

    subscription = ours(stripe_id)
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.current_period_end == JAN_31 + timedelta(hours=3)
    [paid] = CreditGrant.objects.filter(account=account, source="plan_period")
    assert (paid.amount, paid.basis_amount) == (D(1000), D(20))
    assert balance(account) == D(0)  # the period's credits ended with it
    assert_ledger_sound(account)


# --- a Stripe subscription is changed only through Stripe ---------------------------------


def admin_action(admin_client, action, subscription):
    return admin_client.post(
        "/admin/accounts/subscription/",
        {"action": action, "_selected_action": [subscription.pk]},
        follow=True,
    )


@pytest.mark.django_db
def test_the_admins_cancel_and_resume_act_at_stripe_and_the_webhook_settles_them(
    authed_client, admin_client, plan, offline_stripe, stripe_events, webhook
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())

    answer = admin_action(admin_client, "cancel_at_period_end", ours(stripe_id))
    assert answer.status_code == 200
    assert offline_stripe.get("subscription", stripe_id)["cancel_at_period_end"] is True
    assert ours(stripe_id).cancel_at_period_end is False  # until Stripe's event says so
    webhook.deliver(stripe_events.take())
    assert ours(stripe_id).cancel_at_period_end is True

    admin_action(admin_client, "resume", ours(stripe_id))
    assert offline_stripe.get("subscription", stripe_id)["cancel_at_period_end"] is False
    webhook.deliver(stripe_events.take())
    assert ours(stripe_id).cancel_at_period_end is False


@pytest.mark.django_db
def test_an_api_plan_change_of_a_stripe_subscription_is_refused_and_changes_nothing(
    authed_client, plan, offline_stripe, stripe_events, webhook
):
    account = AccountFactory(external_id="acme")
    PlanFactory(code="basic", price=D("5.00"), billing_interval="month")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())

    answer = authed_client.put("/api/v1/accounts/acme", {"plan": "basic"}, format="json")

    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "subscription_managed_by_stripe"
    subscription = ours(stripe_id)
    assert subscription.status == Subscription.Status.ACTIVE and subscription.plan == plan
    assert offline_stripe.get("subscription", stripe_id)["status"] == "active"
    same_plan = authed_client.put("/api/v1/accounts/acme", {"plan": "pro"}, format="json")
    assert same_plan.status_code == 200  # naming the plan it is on changes nothing


def plan_checkout(authed_client, account, plan):
    return authed_client.post(
        f"/api/v1/accounts/{account.external_id}/checkout",
        {"plan": plan.code, "success_url": "https://app.example/ok",
         "cancel_url": "https://app.example/cancel"},
        format="json",
    )  # fmt: skip


@pytest.mark.django_db
def test_a_second_plan_checkout_is_refused_while_one_is_open_or_a_subscription_lives(
    authed_client, plan, offline_stripe, stripe_events, webhook
):
    account = AccountFactory(external_id="acme")
    first = plan_checkout(authed_client, account, plan)
    assert first.status_code == 201

    second = plan_checkout(authed_client, account, plan)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "checkout_already_open"

    control(offline_stripe, f"checkout_sessions/{first.json()['session_id']}/expire")
    webhook.deliver(stripe_events.take())
    third = plan_checkout(authed_client, account, plan)
    assert third.status_code == 201

    pay(offline_stripe, third.json()["session_id"])
    assert plan_checkout(authed_client, account, plan).json()["error"]["code"] == (
        "checkout_already_open"  # paid at Stripe, its events not here yet
    )
    webhook.deliver(stripe_events.take())
    after = plan_checkout(authed_client, account, plan)
    assert after.status_code == 409
    assert after.json()["error"]["code"] == "already_subscribed"
    assert Subscription.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_a_plan_checkout_cut_before_stripe_answered_is_resumed_never_doubled(
    authed_client, plan, offline_stripe, monkeypatch
):
    account = AccountFactory(external_id="acme")
    stripe_customer(account=account)  # what gets cut is the session request itself
    monkeypatch.setattr(stripe, "api_base", "http://127.0.0.1:9")  # no answer from Stripe
    cut = plan_checkout(authed_client, account, plan)
    assert cut.json()["error"]["code"] == "payment_provider_error"
    # Stripe may have made the session: the claim stays open, and the retry sends the same
    # idempotency key and parameters, so Stripe answers with that session, not a second one.
    claim = PlanCheckout.objects.get(account=account)
    assert claim.status == PlanCheckout.Status.OPEN
    monkeypatch.setattr(stripe, "api_base", offline_stripe.url)
    retried = plan_checkout(authed_client, account, plan)
    assert retried.status_code == 201
    claim.refresh_from_db()
    assert claim.checkout_session_id == retried.json()["session_id"]
    assert PlanCheckout.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_an_invoice_paid_at_a_price_not_ours_renews_nothing_and_is_flagged(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    WebhookEndpoint.objects.create(account=account, url="http://127.0.0.1:9/hooks")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    # Someone moves the subscription, at Stripe, to a 1.00 price on the plan's own product.
    cheap = stripe.Price.create(api_key=KEY, product="creditdesk_plan_pro", unit_amount=100,
                                currency="usd", recurring={"interval": "month"})  # fmt: skip
    item = offline_stripe.get("subscription", stripe_id)["items"]["data"][0]
    stripe.Subscription.modify(stripe_id, api_key=KEY,
                               items=[{"id": item["id"], "price": cheap["id"]}])  # fmt: skip
    webhook.deliver(stripe_events.take())

    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    events = stripe_events.take()
    webhook.deliver(events + events)

    assert CreditGrant.objects.filter(account=account, source="plan_period").count() == 1
    assert ours(stripe_id).current_period_start == JAN_31  # not renewed by that invoice
    assert ours(stripe_id).renewal_held_since is not None
    # Nor by the renewal job, long after Stripe's own renewal is overdue.
    renew_due_subscriptions(now=FEB_28 + timedelta(days=2))
    assert CreditGrant.objects.filter(account=account, source="plan_period").count() == 1
    assert ours(stripe_id).current_period_start == JAN_31
    alert = WebhookEvent.objects.get(account=account, type="purchase.mismatch")
    assert alert.data["plan"] == "pro"
    assert alert.data["paid"] == {"amount": "1", "currency": "USD"}
    assert alert.data["sold"] == {"amount": "20", "currency": "USD"}


def test_a_held_renewal_waits_for_finance_even_when_stripe_bills_as_sold_again(
    authed_client, client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    item = offline_stripe.get("subscription", stripe_id)["items"]["data"][0]
    cheap = stripe.Price.create(api_key=KEY, product="creditdesk_plan_pro", unit_amount=100,
                                currency="usd", recurring={"interval": "month"})  # fmt: skip
    stripe.Subscription.modify(stripe_id, api_key=KEY,
                               items=[{"id": item["id"], "price": cheap["id"]}])  # fmt: skip
    webhook.deliver(stripe_events.take())
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())
    assert ours(stripe_id).renewal_held_since is not None

    # The price is put right at Stripe and the next invoice bills the plan as sold: renewing
    # on it would also grant the period billed at 1.00, so it waits for Finance.
    sold = {"id": item["id"], "price": plan.stripe_price_id}
    stripe.Subscription.modify(stripe_id, api_key=KEY, items=[sold])
    webhook.deliver(stripe_events.take())
    time_machine.move_to(MAR_31 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())
    assert CreditGrant.objects.filter(account=account, source="plan_period").count() == 1

    # Finance releases the hold in the admin; the renewal job catches up both periods.
    client.force_login(UserFactory(groups=["Finance"]))
    client.post("/admin/accounts/subscription/", {
        "action": "release_renewal_hold", "_selected_action": [ours(stripe_id).pk], "index": 0,
    })  # fmt: skip
    assert ours(stripe_id).renewal_held_since is None
    renew_due_subscriptions(now=MAR_31 + timedelta(days=1))
    assert CreditGrant.objects.filter(account=account, source="plan_period").count() == 3
    assert ours(stripe_id).current_period_start == MAR_31
    assert_ledger_sound(account)


@pytest.mark.django_db
def test_a_subscription_at_a_price_we_never_sold_starts_nothing_whatever_its_metadata_says(
    plan, offline_stripe, stripe_events, webhook
):
    account = AccountFactory(external_id="acme")
    WebhookEndpoint.objects.create(account=account, url="http://127.0.0.1:9/hooks")
    customer = stripe.Customer.create(api_key=KEY, metadata={"creditdesk_account": "acme"})
    cheap = stripe.Price.create(api_key=KEY, product="creditdesk_plan_pro", unit_amount=100,
                                currency="usd", recurring={"interval": "month"})  # fmt: skip
    metadata = {"creditdesk_account": "acme", "plan": "pro"}
    session = stripe.checkout.Session.create(
        api_key=KEY, mode="subscription", customer=customer["id"],
        line_items=[{"price": cheap["id"], "quantity": 1}], metadata=metadata,
        subscription_data={"metadata": metadata}, success_url="https://x.example/",
        cancel_url="https://x.example/",
    )  # fmt: skip
    pay(offline_stripe, session["id"])
    webhook.deliver(stripe_events.take())

    assert not Subscription.objects.filter(account=account).exists()
    assert not CreditGrant.objects.filter(account=account).exists()
    alert = WebhookEvent.objects.get(account=account, type="purchase.mismatch")
    assert alert.data["plan"] == "pro"
    assert alert.data["paid"] == {"amount": "1", "currency": "USD"}


@pytest.mark.django_db
def test_a_stripe_trial_grants_its_credits_and_converts_when_stripe_bills_the_first_period(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    """Checkout asks Stripe for the plan's trial; its 0 invoice grants nothing more; the
    invoice at the trial's end converts it into the first paid period."""
    plan.allowances.update(trial_credits=D(50))
    Plan.objects.filter(pk=plan.pk).update(trial_days=14)
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    assert offline_stripe.get("subscription", stripe_id)["status"] == "trialing"
    webhook.deliver(stripe_events.take())

    trial_end = JAN_31 + timedelta(days=14)
    subscription = ours(stripe_id)
    assert (subscription.status, subscription.current_period_end) == ("trialing", trial_end)
    assert balance(account) == D(50)
    assert not WebhookEvent.objects.filter(type="purchase.mismatch").exists()

    time_machine.move_to(trial_end + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())
    subscription = ours(stripe_id)
    assert (subscription.status, subscription.current_period_start) == ("active", trial_end)
    assert balance(account) == D(1000)  # the trial's 50 expired with it
    [paid] = CreditGrant.objects.filter(account=account, source="plan_period")
    assert (paid.amount, paid.basis_amount) == (D(1000), D(20))
    assert_ledger_sound(account)


@pytest.mark.django_db
def test_a_second_checkout_of_a_plan_already_tried_asks_stripe_for_no_trial(
    authed_client, plan, offline_stripe
):
    Plan.objects.filter(pk=plan.pk).update(trial_days=14)
    account = AccountFactory(external_id="acme")
    SubscriptionFactory(account=account, plan=plan, status="canceled")
    session_id = checkout(authed_client, account, plan=plan.code)
    assert (
        "trial_period_days"
        not in offline_stripe.get("checkout.session", session_id)["subscription_data"]
    )
