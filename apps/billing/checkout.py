"""What a customer starts at Stripe: their Stripe Customer, a Checkout Session for a credit
pack or a plan, and changes to a Stripe subscription (cancel at period end, switch plan)."""

from dataclasses import dataclass
from datetime import timedelta

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone
from djstripe import models as djstripe
from djstripe.settings import djstripe_settings

from apps.accounts.models import Subscription
from apps.core import clock
from apps.core.errors import (
    AlreadySubscribed,
    CheckoutAlreadyOpen,
    DomainError,
    InvalidInput,
    PaymentProviderError,
)
from apps.periods.services import (
    cancel_at_period_end,
    change_plan_at_period_end,
    resume_subscription,
    trial_days_for,
)

from .catalog_sync import price_matches, wanted_price
from .contract_prices import bill_at_stripe, price_due
from .gateway import api_key, call_stripe, from_timestamp
from .models import PlanCheckout, Purchase


def stripe_customer(*, account):
    """The account's Stripe Customer, created on first use. Stripe's idempotency key makes
    two first checkouts at once create one customer."""
    found = djstripe.Customer.objects.filter(subscriber=account, date_purged__isnull=True).first()
    if found is not None:
        return found
    customer = call_stripe(
        stripe.Customer.create,
        idempotency_key=f"creditdesk-customer-{account.pk}",
        email=account.email or None,
        name=account.name or account.external_id,
        metadata={
            djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(account.pk),
            "creditdesk_account": account.external_id,
        },
    )
    with transaction.atomic(durable=True):
        mirrored = djstripe.Customer.sync_from_stripe_data(customer, api_key=api_key())
        if mirrored.subscriber_id != account.pk:
            mirrored.subscriber = account
            mirrored.save(update_fields=["subscriber"])
    return mirrored


@dataclass
class Checkout:
    checkout_url: str
    session_id: str


def _live_stripe_subscriptions(account):
    return account.subscriptions.filter(
        status__in=Subscription.LIVE_STATUSES, stripe_subscription_id__isnull=False
    )


def start_checkout(*, account, credit_pack=None, plan=None, success_url, cancel_url):
    """A Stripe Checkout Session for a credit pack (mode=payment; the card is saved for
    auto-recharge) or a plan (mode=subscription). The account and item travel in metadata,
    which the event handlers read back."""
    if (credit_pack is None) == (plan is None):
        raise InvalidInput(
            "Give either credit_pack or plan.",
            details={"credit_pack": ["give exactly one of credit_pack and plan"]},
        )
    item = credit_pack or plan
    field_name = "credit_pack" if credit_pack else "plan"
    if not item.active:
        raise InvalidInput(f"{item.code} is not on sale.", details={field_name: ["inactive"]})
    if item.stripe_price_id is None:
        raise InvalidInput(
            f"{item.code} has no Stripe price yet: run 'Sync to Stripe' in the admin.",
            details={field_name: ["not synced to Stripe"]},
        )
    if not price_matches(item.stripe_price, wanted_price(item)):
        # Refused, not re-synced here: a new Stripe price is a catalog change staff make on
        # purpose (admin action or sync_stripe_catalog), and the customer must pay what the
        # page showed.
        raise InvalidInput(
            f"{item.code} changed since it was synced to Stripe: run 'Sync to Stripe' in the "
            "admin, then try again.",
            details={field_name: ["changed since it was synced to Stripe"]},
        )
    if plan is not None and _live_stripe_subscriptions(account).exists():
        raise AlreadySubscribed()
    claim = _claim_plan_checkout(account=account, plan=plan) if plan is not None else None
    try:
        customer = stripe_customer(account=account)
    except PaymentProviderError:
        _release(claim)
        raise
    metadata = {"creditdesk_account": account.external_id, field_name: item.code}
    price_id = item.stripe_price_id
    if plan is not None:
        try:
            # A contract with a price: the customer subscribes at the contract's.
            price_id = price_due(account_id=account.pk, plan=plan, at=clock.now())
        except DomainError:
            _release(claim)
            raise
    params = {
        "mode": "payment" if credit_pack else "subscription",
        "customer": customer.id,
        "client_reference_id": account.external_id,
        "line_items": [{"price": price_id, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
    }
    if credit_pack:
        params["payment_intent_data"] = {"metadata": metadata, "setup_future_usage": "off_session"}
    else:
        metadata["creditdesk_plan_checkout"] = str(claim.pk)
        params["subscription_data"] = {"metadata": metadata}
        if trial_days := trial_days_for(account=account, plan=plan):
            params["subscription_data"]["trial_period_days"] = trial_days
        # The same parameters and key on every attempt of this claim: a retry after a cut
        # request gets the session Stripe may already have made, never a second one.
        params["expires_at"] = int((claim.created_at + PLAN_CHECKOUT_OPEN_FOR).timestamp())
        params["idempotency_key"] = f"creditdesk-plan-checkout-{claim.pk}"
    try:
        session = call_stripe(stripe.checkout.Session.create, **params)
    except PaymentProviderError as problem:
        if not getattr(problem, "outcome_unknown", False):
            _release(claim)  # Stripe refused: no session exists
        raise
    if claim is not None:
        claim.checkout_session_id = session["id"]
        claim.expires_at = from_timestamp(session.get("expires_at"))
        claim.save(update_fields=["checkout_session_id", "expires_at"])
    if credit_pack:
        Purchase.objects.create(
            account=account,
            credit_pack=credit_pack,
            credits=credit_pack.credits,
            price=credit_pack.price,
            currency=credit_pack.currency,
            checkout_session_id=session["id"],
        )
    return Checkout(checkout_url=session["url"], session_id=session["id"])


# A plan Checkout stays open this long (Stripe's shortest, plus a margin): while it is open the
# account can start no other plan Checkout.
PLAN_CHECKOUT_OPEN_FOR = timedelta(minutes=31)


def _claim_plan_checkout(*, account, plan):
    """The account's one open plan Checkout, claimed before Stripe is asked (a database
    constraint refuses a second while one is open). A claim whose request to Stripe was cut
    (no session id yet) is resumed for the same plan, with the same idempotency key; an open
    claim that Stripe says is over (expired; its event lost or late) is closed first. Real
    time throughout, not apps.core.clock: a Checkout's lifetime is Stripe's."""
    for earlier in PlanCheckout.objects.filter(account=account, status=PlanCheckout.Status.OPEN):
        cut = earlier.checkout_session_id is None and earlier.plan_id == plan.pk
        if cut and earlier.created_at > timezone.now() - PLAN_CHECKOUT_OPEN_FOR:
            return earlier
        _close_if_over(earlier)
    try:
        with transaction.atomic(durable=True):
            return PlanCheckout.objects.create(account=account, plan=plan)
    except IntegrityError:
        raise CheckoutAlreadyOpen() from None


def _close_if_over(claim):
    now = timezone.now()  # real time, not the demo clock: Stripe's, as created_at and expires_at
    if claim.checkout_session_id is None:
        # Cut before Stripe answered: a session may exist, open as long as any would be.
        if claim.created_at <= now - PLAN_CHECKOUT_OPEN_FOR:
            _release(claim)
        return
    if claim.expires_at is None or claim.expires_at > now:
        return  # open, or paid and its events on the way: either way it stands
    session = call_stripe(stripe.checkout.Session.retrieve, id=claim.checkout_session_id)
    if session.get("status") == "expired":
        PlanCheckout.objects.filter(pk=claim.pk, status=PlanCheckout.Status.OPEN).update(
            status=PlanCheckout.Status.EXPIRED
        )


def _release(claim):
    if claim is not None:
        PlanCheckout.objects.filter(pk=claim.pk, status=PlanCheckout.Status.OPEN).update(
            status=PlanCheckout.Status.FAILED
        )


def set_cancel_at_period_end(*, subscription, cancel, acting_user=None):
    """Cancel the subscription at its period end (`cancel=True`) or undo that. A Stripe
    subscription is changed at Stripe only (`cancel_at_period_end` on Stripe's object;
    called outside any transaction): Stripe's customer.subscription.updated then settles
    ours, as it does for a change made in Stripe's dashboard. Returns whether ours changed
    now (False: it changes when Stripe's event arrives)."""
    if subscription.stripe_subscription_id:
        call_stripe(
            stripe.Subscription.modify,
            id=subscription.stripe_subscription_id,
            cancel_at_period_end=cancel,
        )
        return False
    change = cancel_at_period_end if cancel else resume_subscription
    change(account=subscription.account, acting_user=acting_user)
    return True


def switch_stripe_plan(*, account, plan, acting_user=None):
    """Move the account's Stripe subscription to `plan` at the end of the current period:
    the new plan's credits start with the period it is paid for (switching at once would
    hand out a fresh allowance on every switch). Stripe's subscription moves to the new
    price without proration, so its next invoice bills the new plan; here the plan is
    scheduled (`scheduled_plan`) and the renewal takes it over. Choosing the current plan
    again cancels a scheduled switch. `acting_user`: the staff member who switched it (the
    admin's account page), recorded in the subscription's history. Returns the
    Subscription."""
    current = _live_stripe_subscriptions(account).select_related("plan", "scheduled_plan").first()
    if current is None:
        raise InvalidInput("The account has no Stripe subscription to change.",
                           details={"plan": ["no Stripe subscription: use Checkout"]})  # fmt: skip
    if plan.code == current.plan.code:
        plan = current.plan  # staying on one's plan keeps one's version
    if not plan.active or plan.stripe_price_id is None:
        raise InvalidInput(f"{plan.code} is not on sale.", details={"plan": ["not on sale"]})
    if plan.billing_interval != current.plan.billing_interval:
        raise InvalidInput(
            f"{plan.code} bills every {plan.billing_interval}, the current plan every "
            f"{current.plan.billing_interval}: such a change is made by staff.",
            details={"plan": ["another billing interval"]},
        )
    if plan.pk == (current.scheduled_plan_id or current.plan_id):
        raise InvalidInput(f"The account is already on {plan.code}.",
                           details={"plan": ["already on this plan"]})  # fmt: skip
    before = current.scheduled_plan or current.plan
    # Scheduled first, so that Stripe's customer.subscription.updated, which may arrive
    # before Stripe's answer does, finds the switch expected and waits for the period end.
    subscription = change_plan_at_period_end(account=account, plan=plan, acting_user=acting_user)
    try:
        bill_at_stripe(stripe_subscription_id=current.stripe_subscription_id, plan=plan)
    except PaymentProviderError:
        change_plan_at_period_end(account=account, plan=before, acting_user=acting_user)
        raise
    return subscription
