"""Stripe subscriptions → the account's Subscription (docs/billing.md). Each function runs in
dj-stripe's webhook transaction and works from Stripe's current object (dj-stripe re-reads
it before our receivers run), so a repeated or out-of-order event finds the state already
right and changes nothing. Lock order: the subscription row, then wallets (as the renewal
job)."""

import logging
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from djstripe import models as djstripe

from apps.accounts.models import Account, Subscription
from apps.catalog.models import Plan
from apps.core import clock
from apps.jobs.counts import JobCounts
from apps.periods.services import (
    cancel_at_period_end,
    end_subscription,
    locked_subscription,
    put_account_on_plan,
    renew_subscription,
    resume_subscription,
)
from apps.webhooks.models import WebhookEvent

from .catalog_sync import product_prefix
from .contract_prices import (
    pays_a_contract,
    price_data,
    sales_at,
    starting_sales,
    stripe_price_id,
)
from .gateway import api_key, first_item, from_timestamp, stripe_request, subscription_period
from .purchases import record_mismatch

logger = logging.getLogger(__name__)
Status = Subscription.Status

# Stripe's statuses in ours; None: not ours to act on (incomplete: the first payment is still
# open, no credits yet; paused: nothing changes until it resumes).
STATUSES = {
    "active": Status.ACTIVE,
    "trialing": Status.TRIALING,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.PAST_DUE,
    "canceled": Status.CANCELED,
    "incomplete_expired": Status.CANCELED,
}


def _plan(data):
    """The plan the subscription's price belongs to: the price stored on the plan, else the
    plan named in the metadata (a plan repriced since keeps old subscribers on the old
    price), else the product's id (`creditdesk_plan_<code>`)."""
    price = first_item(data).get("price") or {}
    price_id = price.get("id") if isinstance(price, dict) else price
    found = Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None
    code = (data.get("metadata") or {}).get("plan")
    if found is None and code:
        found = Plan.objects.filter(code=code, current=True).first()
    product = price.get("product") if isinstance(price, dict) else None
    if found is None and isinstance(product, str) and product.startswith(product_prefix("plan")):
        found = Plan.objects.filter(
            code=product.removeprefix(product_prefix("plan")), current=True
        ).first()
    return found


def _account(data):
    external_id = (data.get("metadata") or {}).get("creditdesk_account")
    if external_id:
        return Account.objects.filter(external_id=external_id).first()
    customer = data.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    found = djstripe.Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    return found.subscriber if found is not None else None


def record_stripe_subscription(*, data):
    """Bring the account's Subscription in step with Stripe's subscription `data`: create it
    (granting the first period) once Stripe's is active, follow its plan, its cancellation
    at period end, past due and recovery, and its end. Periods advance on invoice.paid.
    Returns the Subscription or None."""
    status = STATUSES.get(data.get("status"))
    ours = locked_subscription(stripe_subscription_id=data["id"])
    if ours is None:
        return _start(data, status)
    if ours.status == Status.CANCELED or status is None:
        return ours
    if status == Status.CANCELED:
        return end_subscription(subscription=ours)
    # A contract's price says nothing of the plan: the subscription keeps its own.
    plan = None if pays_a_contract(first_item(data)) else _plan(data)
    if plan is not None and plan.stripe_price_id != stripe_price_id(first_item(data)):
        # Found by its code only (a price replaced before plans had versions): the plan the
        # subscription is on keeps its version.
        plan = ours.plan if plan.code == ours.plan.code else plan
    if plan is not None and plan.pk not in (ours.plan_id, ours.scheduled_plan_id):
        ours = _switch_plan(ours, plan, data)  # changed at Stripe (e.g. its dashboard)
    if bool(data.get("cancel_at_period_end")) != ours.cancel_at_period_end:
        change = cancel_at_period_end if data.get("cancel_at_period_end") else resume_subscription
        change(account=ours.account, in_caller_transaction=True)
        ours.refresh_from_db()
    if status == Status.PAST_DUE:
        mark_past_due(subscription=ours)
    elif ours.status == Status.PAST_DUE:
        recover(subscription=ours)
    elif ours.status != status and not (
        ours.status == Status.TRIALING and status == Status.ACTIVE
    ):  # a trial turns active with its first paid period (the renewal: trial.ended)
        ours.status = status
        ours.save(update_fields=["status", "updated_at"])
    return ours


def _start(data, status, period=None):
    """Our Subscription for Stripe's, live (`status`), on its current period or `period`
    (start, end); None if it is not one of ours to start."""
    if status not in (Status.ACTIVE, Status.TRIALING):
        return None
    account, plan = _account(data), _plan(data)
    if account is None or plan is None:
        logger.warning("Stripe subscription %s: no account or plan to match it", data["id"])
        return None
    item = first_item(data)
    start, end = period or subscription_period(data)
    sales = starting_sales(account_id=account.pk, plan=plan)
    price = price_data(stripe_price_id(item)) or (
        item["price"] if isinstance(item.get("price"), dict) else {}
    )
    line = {"quantity": item.get("quantity", 1), "currency": price.get("currency"),
            "amount": (price.get("unit_amount") or 0) * item.get("quantity", 1)}  # fmt: skip
    if not any(sale.matches(line, price) for sale in sales):
        # Found by metadata or product only: a price we never sold grants nothing.
        _flag_mismatch(account.pk, sales[0], price.get("unit_amount"), price.get("currency"),
                       {"subscription": data["id"]})  # fmt: skip
        return None
    # A trial at Stripe (a Checkout of a plan with one) is the plan's trial here: its credits
    # now, the first paid period when Stripe bills it.
    subscription = put_account_on_plan(
        account=account, plan=plan, starts_at=start, with_trial=status == Status.TRIALING
    )
    return _link(subscription, data, status, end)


def _switch_plan(ours, plan, data):
    """The customer changed plan at Stripe: the new plan starts now with its full credits
    and the old period closes by the old plan's terms (as a manual plan change)."""
    stripe_id, ours.stripe_subscription_id = ours.stripe_subscription_id, None
    ours.save(update_fields=["stripe_subscription_id"])
    subscription = put_account_on_plan(account=ours.account, plan=plan, with_trial=False)
    return _link(subscription, data, ours.status, None, stripe_id=stripe_id)


def _link(subscription, data, status, end, *, stripe_id=None):
    subscription.stripe_subscription_id = stripe_id or data["id"]
    subscription.status = status
    anchor = from_timestamp(data.get("billing_cycle_anchor"))
    if anchor is not None and end is not None:
        subscription.billing_anchor = anchor
    if end is not None and end > subscription.current_period_start:
        subscription.current_period_end = end
    subscription.save()
    return subscription


def ensure_subscription(*, stripe_id):
    """Our Subscription for Stripe's, locked; made from Stripe's current object when its
    own event has not come yet (Stripe does not promise order)."""
    ours = locked_subscription(stripe_subscription_id=stripe_id)
    if ours is not None:
        return ours
    return record_stripe_subscription(data=_stripe_subscription(stripe_id))


def _stripe_subscription(stripe_id):
    """Stripe's subscription (JSON) as dj-stripe mirrors it, fetched from Stripe when its
    own event has not come yet."""
    mirrored = djstripe.Subscription.objects.filter(id=stripe_id).first()
    if mirrored is None:
        remote = stripe_request(stripe.Subscription.retrieve, stripe_id)
        mirrored = djstripe.Subscription.sync_from_stripe_data(remote, api_key=api_key())
    return mirrored.stripe_data


def _start_ended(data, invoice):
    """Stripe's subscription `data` was canceled before any of its events were processed
    here (Stripe holds them while the endpoint is down, for up to three days, and sends them
    in any order, each read back as canceled): its paid `invoice` still bought a period.
    Start our Subscription on that period, granting it, and end it now, as its events would
    have in time. None if Stripe's is not canceled (or not ours), or nothing was paid (a
    trial's invoice: its credits would end unused, and no money came in)."""
    if data.get("status") != "canceled" or not invoice.get("total"):
        return None
    ends = [line.get("period", {}).get("end") for line in invoice["lines"]["data"]]
    period = (_invoice_period_start(invoice), from_timestamp(max(e for e in ends if e)))
    ours = _start(data, Status.ACTIVE, period)
    return None if ours is None else end_subscription(subscription=ours)


def _invoice_subscription(data):
    parent = (data.get("parent") or {}).get("subscription_details") or {}
    found = parent.get("subscription") or data.get("subscription")
    return found.get("id") if isinstance(found, dict) else found


def record_invoice(*, data):
    """A subscription's invoice was paid or its payment failed. Paid: the period it bills
    has begun, so renew through it (the job's path: whichever comes first wins), and a past
    due subscription recovers; a subscription Stripe canceled before we heard of it is
    recorded, ended, with the period paid (`_start_ended`). Failed: past due, with a grace
    before consumption stops."""
    subscription_id = _invoice_subscription(data)
    if not subscription_id:
        return None
    ours = ensure_subscription(stripe_id=subscription_id)
    if ours is None and data.get("status") == "paid":
        return _start_ended(_stripe_subscription(subscription_id), data)
    if ours is None or ours.status == Status.CANCELED:
        return ours
    if data.get("status") == "paid":
        if ours.status == Status.TRIALING and data.get("total") == 0:
            return ours  # the trial's own invoice: its credits came with the subscription
        if not _billed_as_sold(ours, data):
            # Flagged for Finance; neither this invoice nor the renewal job grants the period.
            hold_renewal(subscription=ours)
            return ours
        if ours.renewal_held_since is not None:
            # Renewing now would also grant the period billed at the wrong price: Finance
            # decides (the subscription admin's "Release renewal hold").
            logger.warning("Stripe invoice %s not renewed: renewal held", data["id"])
            return ours
        if ours.status == Status.PAST_DUE:
            recover(subscription=ours)
        return renew_subscription(subscription=ours, until=_invoice_period_start(data))
    if data.get("status") == "open" and data.get("attempted"):
        mark_past_due(subscription=ours)
    return ours


def _billed_as_sold(ours, data):
    """Whether the invoice bills the period as sold (contract_prices.sales_at): a line at a
    Stripe price CreditDesk made for the subscription's plan (or its scheduled one), or for
    the account's contract when it is live as the period starts, quantity 1, at that price's
    amount, in its currency. Metadata never decides it. If not, `purchase.mismatch` goes to
    the account's webhook endpoints (once per invoice) and nothing is granted."""
    lines = [line for line in data["lines"]["data"] if stripe_price_id(line)]
    begun = _invoice_period_start(data) or ours.current_period_end
    sales = sales_at(account_id=ours.account_id, plans=(ours.plan, ours.scheduled_plan), at=begun)
    for line in lines:
        price = price_data(stripe_price_id(line))
        if any(sale.matches(line, price) for sale in sales):
            return True
    line = lines[0] if lines else {}
    handles = {"invoice": data["id"], "subscription": ours.stripe_subscription_id}
    currency = line.get("currency") or data.get("currency")
    _flag_mismatch(ours.account_id, sales[0], line.get("amount"), currency, handles)
    return False


def _invoice_period_start(data):
    """When the period an invoice bills begins (its lines' latest start)."""
    starts = [line.get("period", {}).get("start") for line in data["lines"]["data"]]
    return from_timestamp(max((s for s in starts if s), default=None))


def _flag_mismatch(account_id, sale, amount, currency, handles):
    """Stripe billed another price than `sale`: logged, and `purchase.mismatch` to the
    account's webhook endpoints once per Stripe object (the first of `handles`)."""
    (handle, value), *_ = handles.items()
    logger.warning("Stripe %s %s does not bill %s as sold: nothing granted", handle, value,
                   sale.tag)  # fmt: skip
    if WebhookEvent.objects.filter(
        account_id=account_id, type="purchase.mismatch", **{f"data__{handle}": value}
    ).exists():
        return
    record_mismatch(account_id=account_id, item={"plan": sale.plan_code}, sold=sale.price,
                    sold_currency=sale.currency, paid_minor=amount, paid_currency=currency,
                    handles=handles)  # fmt: skip


def hold_renewal(*, subscription):
    """Stop renewing a subscription Stripe billed at another price than sold, until Finance
    releases it (release_renewal_hold)."""
    if subscription.renewal_held_since is None:
        subscription.renewal_held_since = clock.now()
        subscription.save(update_fields=["renewal_held_since", "updated_at"])


def release_renewal_hold(*, subscription, acting_user=None):
    """Finance has settled a mismatch (the price fixed at Stripe, or the difference accepted):
    renewals resume, and the renewal job catches up every period since, the held one too.
    Returns whether a hold was released."""
    with transaction.atomic(durable=True):
        # Why the lock: the renewal job and Stripe's events change this row too.
        held = (
            Subscription.objects.select_for_update(of=("self",))
            .filter(pk=subscription.pk, renewal_held_since__isnull=False)
            .first()
        )
        if held is None:
            return False
        held.renewal_held_since = None
        held._history_user = acting_user
        held.save(update_fields=["renewal_held_since", "updated_at"])
    return True


def mark_past_due(*, subscription):
    if subscription.status == Status.PAST_DUE:
        return
    subscription.status = Status.PAST_DUE
    subscription.past_due_since = clock.now()
    subscription.save(update_fields=["status", "past_due_since", "updated_at"])


def recover(*, subscription):
    """Paid after all: active again, and an account billing suspended is let back in."""
    subscription.status = Status.ACTIVE
    subscription.past_due_since = None
    subscription.save(update_fields=["status", "past_due_since", "updated_at"])
    for account in Account.objects.filter(
        pk=subscription.account_id, suspended_for_nonpayment=True
    ):
        account.status, account.suspended_for_nonpayment = Account.Status.ACTIVE, False
        account._change_reason = "Overdue invoice paid"
        account.save(update_fields=["status", "suspended_for_nonpayment", "updated_at"])


def suspend_past_due_accounts(*, now=None, on_chunk=None):
    """Suspend (account_suspended on every consume) the accounts whose subscription has been
    past due longer than STRIPE_PAST_DUE_GRACE_DAYS. Returns JobCounts."""
    now = now or clock.now()
    counts = JobCounts()
    overdue = Subscription.objects.filter(
        status=Status.PAST_DUE,
        past_due_since__lte=now - timedelta(days=settings.STRIPE_PAST_DUE_GRACE_DAYS),
    ).values("account_id")
    for account in Account.objects.filter(pk__in=overdue, status=Account.Status.ACTIVE):
        account.status, account.suspended_for_nonpayment = Account.Status.SUSPENDED, True
        account._change_reason = "Subscription past due beyond its grace"
        account.save(update_fields=["status", "suspended_for_nonpayment", "updated_at"])
        counts.suspended += 1
    if on_chunk is not None:
        on_chunk(counts)
    return counts
