"""Stripe billing: catalog sync, customers, Checkout, and what Stripe's events do to the
ledger (docs/billing.md).

Calls to Stripe never run inside a database transaction that holds a lock: each is made
first, and what it returns is written in a short transaction after. Event handlers run
inside dj-stripe's webhook transaction (the event is recorded and acted on together, or
not at all, and Stripe delivers it again), so they lock and write in the caller's
transaction: the purchase row first, then wallets as the ledger does.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from uuid import uuid4

import stripe
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from djstripe import models as djstripe
from djstripe.settings import djstripe_settings

from apps.accounts.models import Account, Subscription
from apps.catalog.models import CreditPack, Plan
from apps.core.decimals import CREDIT_PLACES, UNIT_PRICE_PLACES, format_decimal
from apps.core.errors import (
    AlreadySubscribed,
    CheckoutAlreadyOpen,
    InvalidInput,
    PaymentProviderError,
)
from apps.wallets.models import CreditGrant
from apps.wallets.services import claw_back, grant_credits

from .models import PlanCheckout, Purchase

logger = logging.getLogger(__name__)

# Stripe counts most currencies in cents, these in whole units.
ZERO_DECIMAL_CURRENCIES = {
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
}  # fmt: skip


def currency_places(currency):
    """Decimal places of the currency's smallest unit at Stripe: 0 for yen, else 2."""
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2


def in_smallest_unit(amount, currency):
    """`amount` rounded (half up) to what Stripe can bill in `currency`: 70.35 JPY -> 70."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-currency_places(currency)), ROUND_HALF_UP)


def to_minor_units(amount, currency):
    minor = amount.scaleb(currency_places(currency))
    if minor != minor.to_integral_value():
        raise InvalidInput(f"{amount} {currency} has more decimals than Stripe takes.")
    return int(minor)


def from_minor_units(amount, currency):
    return Decimal(int(amount)).scaleb(-currency_places(currency))


def from_timestamp(timestamp):
    """A Stripe timestamp (seconds since the epoch) as an aware datetime; None stays None."""
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


def api_key():
    key = djstripe_settings.STRIPE_SECRET_KEY
    if not key:
        raise PaymentProviderError(
            "Stripe is not configured: set STRIPE_TEST_SECRET_KEY or STRIPE_LIVE_SECRET_KEY."
        )
    return key


def call_stripe(operation, **params):
    """One Stripe API call with the configured key; Stripe's failures become
    PaymentProviderError (logged with Stripe's request id)."""
    try:
        return operation(api_key=api_key(), **params)
    except stripe.StripeError as error:
        logger.warning("Stripe refused %s: %s", getattr(operation, "__qualname__", ""), error)
        problem = PaymentProviderError(
            f"Stripe: {error.user_message or 'the request failed'}",
            details={"stripe_request_id": error.request_id, "stripe_code": error.code},
        )
        # No answer, or Stripe's own error: the request may have taken effect at Stripe.
        problem.outcome_unknown = isinstance(error, (stripe.APIConnectionError, stripe.APIError))
        raise problem from None


# --- catalog ------------------------------------------------------------------------------


@dataclass
class CatalogSync:
    created: list = field(default_factory=list)
    repriced: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    archived: list = field(default_factory=list)

    def summary(self):
        return ", ".join(
            f"{len(items)} {name}"
            for name, items in (("created", self.created), ("repriced", self.repriced),
                                ("unchanged", self.unchanged), ("archived", self.archived))
        )  # fmt: skip


def _wanted_price(item):
    wanted = {
        "unit_amount": to_minor_units(item.price, item.currency),
        "currency": item.currency.lower(),
        "recurring": None,
    }
    if isinstance(item, Plan):
        wanted["recurring"] = {"interval": item.billing_interval, "interval_count": 1}
    return wanted


def _price_matches(price, wanted):
    data = price.stripe_data
    recurring = data.get("recurring") or None
    return (
        data.get("active", True)
        and data.get("unit_amount") == wanted["unit_amount"]
        and data.get("currency") == wanted["currency"]
        and (recurring or {}).get("interval") == (wanted["recurring"] or {}).get("interval")
    )


def sync_stripe_catalog(*, plans=None, packs=None):
    """Give every active plan (a recurring Price) and credit pack (a one-time Price) a Stripe
    Product and Price, mirrored by dj-stripe and stored on the item. Idempotent: a product's
    id is derived from the item's code; a price that no longer matches the item (Stripe
    prices are immutable) is replaced and the old one archived; inactive items' prices are
    archived. Returns a CatalogSync."""
    report = CatalogSync()
    plans = Plan.objects.all() if plans is None else plans
    packs = CreditPack.objects.all() if packs is None else packs
    for kind, items in (("plan", plans), ("pack", packs)):
        for item in items.select_related("stripe_price"):
            _sync_item(kind, item, report)
    return report


def _sync_item(kind, item, report):
    label = f"{kind} {item.code}"
    current = item.stripe_price
    if not item.active:
        if current is not None and current.stripe_data.get("active", True):
            _archive(current)
            report.archived.append(label)
        return
    wanted = _wanted_price(item)
    product = _product(kind, item)
    if current is not None and _price_matches(current, wanted):
        report.unchanged.append(label)
        return
    params = {
        "product": product["id"],
        "unit_amount": wanted["unit_amount"],
        "currency": wanted["currency"],
        "nickname": item.name,
        "metadata": {"creditdesk_item": f"{kind}:{item.code}"},
    }
    if wanted["recurring"]:
        params["recurring"] = wanted["recurring"]
    key = f"creditdesk-price-{kind}-{item.code}-{wanted['unit_amount']}-{wanted['currency']}-"
    key += f"{(wanted['recurring'] or {}).get('interval', 'once')}-{current.id if current else ''}"
    price = call_stripe(stripe.Price.create, idempotency_key=key, **params)
    with transaction.atomic(durable=True):
        mirrored = djstripe.Price.sync_from_stripe_data(price, api_key=api_key())
        type(item).objects.filter(pk=item.pk).update(stripe_price=mirrored)
    if current is not None:
        _archive(current)
        report.repriced.append(label)
    else:
        report.created.append(label)


def _product(kind, item):
    """The item's Stripe Product, created with an id derived from its code (so a retry or a
    second sync finds it), its name kept in step."""
    product_id = f"creditdesk_{kind}_{item.code}".replace(".", "_")
    wanted = {"name": item.name, "metadata": {"creditdesk_item": f"{kind}:{item.code}"}}
    try:
        product = stripe.Product.retrieve(product_id, api_key=api_key())
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise PaymentProviderError(f"Stripe: {error.user_message}") from None
        product = call_stripe(stripe.Product.create, id=product_id, **wanted)
    except stripe.StripeError as error:
        raise PaymentProviderError(f"Stripe: {error.user_message}") from None
    else:
        if product["name"] != item.name or not product["active"]:
            product = call_stripe(stripe.Product.modify, id=product_id, active=True, **wanted)
    with transaction.atomic(durable=True):
        djstripe.Product.sync_from_stripe_data(product, api_key=api_key())
    return product


def _archive(price):
    archived = call_stripe(stripe.Price.modify, id=price.id, active=False)
    with transaction.atomic(durable=True):
        djstripe.Price.sync_from_stripe_data(archived, api_key=api_key())


# --- the webhook endpoint -----------------------------------------------------------------

# What the handlers act on (apps/billing/handlers.py), plus what dj-stripe mirrors for them.
WEBHOOK_EVENTS = [
    "checkout.session.completed", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "checkout.session.expired",
    "charge.succeeded", "charge.refunded", "charge.refund.updated", "charge.updated",
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
    "customer.created", "customer.updated", "customer.deleted",
    "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "invoice.paid", "invoice.payment_failed",
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_method.attached",
    "price.created", "price.updated", "product.created", "product.updated",
]  # fmt: skip


def connect_stripe_webhook(*, base_url):
    """Register `<base_url>/stripe/webhook/<uuid>/` with Stripe for the events above and keep
    its signing secret in dj-stripe's WebhookEndpoint (as dj-stripe's admin does). An
    endpoint already registered for `base_url` and still enabled at Stripe is kept.
    Returns `(endpoint, created)`."""
    base_url = base_url.rstrip("/")
    prefix = f"{base_url}/stripe/webhook/"
    for endpoint in djstripe.WebhookEndpoint.objects.filter(url__startswith=prefix):
        try:
            remote = stripe.WebhookEndpoint.retrieve(endpoint.id, api_key=api_key())
        except stripe.InvalidRequestError:
            continue  # gone at Stripe (e.g. the offline Stripe's state was reset)
        except stripe.StripeError as error:
            raise PaymentProviderError(f"Stripe: {error.user_message}") from None
        if remote["status"] == "enabled":
            return endpoint, False
    uuid = uuid4()
    created = call_stripe(
        stripe.WebhookEndpoint.create,
        url=f"{prefix}{uuid}/",
        enabled_events=WEBHOOK_EVENTS,
        api_version=djstripe_settings.STRIPE_API_VERSION,
        metadata={"djstripe_uuid": str(uuid)},
        description="CreditDesk (dj-stripe)",
    )
    with transaction.atomic(durable=True):
        endpoint = djstripe.WebhookEndpoint.sync_from_stripe_data(created, api_key=api_key())
    return endpoint, True


# --- customers and checkout ---------------------------------------------------------------


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
    if not _price_matches(item.stripe_price, _wanted_price(item)):
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
    params = {
        "mode": "payment" if credit_pack else "subscription",
        "customer": customer.id,
        "client_reference_id": account.external_id,
        "line_items": [{"price": item.stripe_price_id, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
    }
    if credit_pack:
        params["payment_intent_data"] = {"metadata": metadata, "setup_future_usage": "off_session"}
    else:
        metadata["creditdesk_plan_checkout"] = str(claim.pk)
        params["subscription_data"] = {"metadata": metadata}
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
    claim that Stripe says is over (expired; its event lost or late) is closed first."""
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
    now = timezone.now()
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
    from apps.periods.services import cancel_at_period_end, resume_subscription

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


def switch_stripe_plan(*, account, plan):
    """Move the account's Stripe subscription to `plan` at the end of the current period:
    the new plan's credits start with the period it is paid for (switching at once would
    hand out a fresh allowance on every switch). Stripe's subscription moves to the new
    price without proration, so its next invoice bills the new plan; here the plan is
    scheduled (`scheduled_plan`) and the renewal takes it over. Choosing the current plan
    again cancels a scheduled switch. Returns the Subscription."""
    from apps.periods.services import change_plan_at_period_end

    current = _live_stripe_subscriptions(account).select_related("plan", "scheduled_plan").first()
    if current is None:
        raise InvalidInput("The account has no Stripe subscription to change.",
                           details={"plan": ["no Stripe subscription: use Checkout"]})  # fmt: skip
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
    subscription = change_plan_at_period_end(account=account, plan=plan)
    try:
        remote = call_stripe(stripe.Subscription.retrieve, id=current.stripe_subscription_id)
        call_stripe(
            stripe.Subscription.modify,
            id=current.stripe_subscription_id,
            items=[{"id": remote["items"]["data"][0]["id"], "price": plan.stripe_price_id}],
            proration_behavior="none",
            metadata={"plan": plan.code},
        )
    except PaymentProviderError:
        change_plan_at_period_end(account=account, plan=before)
        raise
    return subscription


# --- event handlers' services (in dj-stripe's webhook transaction) -------------------------


def _locked_purchase(**lookup):
    # Why the lock: two events for one purchase (completed, async_payment_succeeded, a
    # refund) may be processed at once; the second waits and sees what the first did.
    return Purchase.objects.select_for_update(of=("self",)).filter(**lookup).first()


def record_checkout_session(*, session, event_type=None):
    """A Checkout Session changed (completed, paid later, its delayed payment failed,
    expired). A paid pack session grants the pack's credits once, at the price paid (cost
    basis = amount ÷ credits); one whose delayed payment failed (`event_type`
    checkout.session.async_payment_failed: the session stays `complete` and unpaid) is
    failed."""
    data = session.stripe_data
    if data.get("mode") == "subscription":
        _close_plan_checkout(data)
        return None
    if data.get("mode") != "payment":
        return None
    purchase = _locked_purchase(checkout_session_id=data["id"]) or _purchase_from_metadata(data)
    if purchase is None:
        logger.info("Checkout Session %s is not a CreditDesk purchase", data["id"])
        return None
    if data.get("status") == "expired" and purchase.status == Purchase.Status.OPEN:
        purchase.status = Purchase.Status.EXPIRED
        purchase.save(update_fields=["status"])
    if (
        event_type == "checkout.session.async_payment_failed"
        and data.get("payment_status") != "paid"
        and purchase.status == Purchase.Status.OPEN
    ):
        purchase.status = Purchase.Status.FAILED
        purchase.save(update_fields=["status"])
    if data.get("payment_status") != "paid" or purchase.grant_id is not None:
        return purchase
    purchase.payment_intent_id = data.get("payment_intent") or purchase.payment_intent_id
    if _paid_as_sold(purchase, data.get("amount_total"), data.get("currency"),
                     {"checkout_session": data["id"]}):  # fmt: skip
        _grant_purchase(purchase, from_minor_units(data["amount_total"], data["currency"]))
        apply_refunds_and_disputes(purchase=purchase)
    return purchase


def _paid_as_sold(purchase, amount, currency, handles):
    """Whether Stripe's object was paid exactly what the purchase sold (its own amount and
    currency, never its metadata). If not, the purchase grants nothing: it is marked for
    Finance (status `mismatch`, with a note) and `purchase.mismatch` goes to the account's
    webhook endpoints, once."""
    sold = to_minor_units(purchase.price, purchase.currency)
    if amount is not None and amount == sold and (currency or "").upper() == purchase.currency:
        return True
    if purchase.status == Purchase.Status.MISMATCH:
        return False
    from .templatetags.billing import money  # staff read "10.00 USD"

    paid = money(from_minor_units(amount, currency), currency) if amount is not None else "nothing"
    sold_text = money(purchase.price, purchase.currency)
    purchase.status = Purchase.Status.MISMATCH
    purchase.mismatch_note = f"Stripe says {paid} was paid; the purchase sold {sold_text}."
    purchase.save(update_fields=["status", "mismatch_note", "payment_intent_id"])
    logger.warning("Purchase %s: %s", purchase.pk, purchase.mismatch_note)
    record_mismatch(account_id=purchase.account_id, item={"credit_pack": purchase.credit_pack.code},
                    sold=purchase.price, sold_currency=purchase.currency, paid_minor=amount,
                    paid_currency=currency, handles=handles)  # fmt: skip
    return False


def record_mismatch(*, account_id, item, sold, sold_currency, paid_minor, paid_currency, handles):
    """`purchase.mismatch` to the account's webhook endpoints: what was sold (`item`, e.g.
    {"plan": "pro"}, at `sold`), what Stripe says was paid, and Stripe's objects (`handles`)."""
    from apps.webhooks.services import record_events

    paid_currency = (paid_currency or "").upper()
    paid = None if paid_minor is None else from_minor_units(paid_minor, paid_currency)
    record_events(events=[(account_id, "purchase.mismatch", {
        **item,
        "sold": {"amount": format_decimal(sold), "currency": sold_currency},
        "paid": {"amount": None if paid is None else format_decimal(paid),
                 "currency": paid_currency or None},
        **handles,
    })])  # fmt: skip


def _close_plan_checkout(data):
    """A plan Checkout's session completed or expired: the account may start another."""
    closed = {"complete": PlanCheckout.Status.COMPLETE, "expired": PlanCheckout.Status.EXPIRED}
    if data.get("status") not in closed:
        return
    claim = (data.get("metadata") or {}).get("creditdesk_plan_checkout") or ""
    PlanCheckout.objects.filter(
        Q(checkout_session_id=data["id"]) | Q(pk=int(claim) if claim.isdigit() else None),
        status=PlanCheckout.Status.OPEN,
    ).update(status=closed[data["status"]])


def _account_and_pack(metadata):
    """The account and pack a payment's metadata names (either may be gone: None)."""
    account = Account.objects.filter(external_id=metadata.get("creditdesk_account")).first()
    pack = CreditPack.objects.filter(code=metadata.get("credit_pack")).first()
    return account, pack


def _purchase_from_metadata(data):
    """A session our API did not start (or whose row is gone): its metadata says what."""
    account, pack = _account_and_pack(data.get("metadata") or {})
    if account is None or pack is None:
        return None
    Purchase.objects.bulk_create(
        [Purchase(account=account, credit_pack=pack, credits=pack.credits, price=pack.price,
                  currency=pack.currency, checkout_session_id=data["id"])],
        ignore_conflicts=True,
    )  # fmt: skip
    return _locked_purchase(checkout_session_id=data["id"])


def grant_paid_purchase(*, account, credit_pack, payment_intent, origin):
    """A pack paid by a PaymentIntent outside Checkout (auto-recharge): its Purchase, granted
    once (reference = the PaymentIntent id), in the caller's transaction. Both the job that
    charged and the payment_intent.succeeded webhook call it; the second changes nothing."""
    Purchase.objects.bulk_create(
        [Purchase(account=account, credit_pack=credit_pack, origin=origin,
                  credits=credit_pack.credits, price=credit_pack.price,
                  currency=credit_pack.currency, payment_intent_id=payment_intent["id"])],
        ignore_conflicts=True,
    )  # fmt: skip
    purchase = _locked_purchase(payment_intent_id=payment_intent["id"])
    if purchase.grant_id is None and payment_intent["status"] == "succeeded":
        received, currency = payment_intent["amount_received"], payment_intent["currency"]
        if _paid_as_sold(purchase, received, currency, {"payment_intent": payment_intent["id"]}):
            _grant_purchase(purchase, from_minor_units(received, currency))
    return purchase


def record_payment_intent(*, payment_intent):
    """payment_intent.succeeded: an auto-recharge charge whose job was cut after Stripe took
    the money still grants (Checkout payments are granted by their session's events)."""
    data = payment_intent.stripe_data
    metadata = data.get("metadata") or {}
    if "creditdesk_auto_recharge" not in metadata:
        return None
    account, pack = _account_and_pack(metadata)
    if account is None or pack is None:
        return None
    return grant_paid_purchase(account=account, credit_pack=pack, payment_intent=data,
                               origin=Purchase.Origin.AUTO_RECHARGE)  # fmt: skip


def _grant_purchase(purchase, amount_paid):
    pack = purchase.credit_pack
    now = timezone.now()
    unit_price = (amount_paid / purchase.credits).quantize(
        Decimal(1).scaleb(-UNIT_PRICE_PLACES), rounding=ROUND_DOWN
    )
    grant, _ = grant_credits(
        account=purchase.account,
        credit_type=pack.credit_type,
        amount=purchase.credits,
        source=CreditGrant.Source.PURCHASE,
        expires_at=now + timedelta(days=pack.expires_after_days)
        if pack.expires_after_days
        else None,
        unit_price=unit_price,
        currency=purchase.currency,
        reference=purchase.reference,
        reason=f"{pack.name} bought ({format_decimal(amount_paid)} {purchase.currency})",
        in_caller_transaction=True,
    )
    purchase.grant = grant
    purchase.amount_paid = amount_paid
    purchase.status = Purchase.Status.PAID
    purchase.paid_at = now
    purchase.save()


def record_charge(*, charge):
    """A charge was refunded, in part or whole: claw back the purchase's share."""
    return record_payment_reversal(payment_intent_id=charge.stripe_data.get("payment_intent"))


def record_payment_reversal(*, payment_intent_id):
    """A payment was refunded or disputed (reversed): bring its purchase's claw-back up to
    date."""
    purchase = _locked_purchase(payment_intent_id=payment_intent_id) if payment_intent_id else None
    if purchase is not None:
        apply_refunds_and_disputes(purchase=purchase)
    return purchase


# Disputes that take the money back (a chargeback). Inquiries (`warning_needs_response`,
# `warning_under_review`, `warning_closed`) take nothing; `won` gives it back.
CHARGEBACK_STATUSES = ("needs_response", "under_review", "lost")


def apply_refunds_and_disputes(*, purchase):
    """Bring the purchase's claw-back up to what Stripe now says was refunded and charged
    back: the same share of its credits as of its price, taken from what is left of its
    grant (never below zero; spent credits stay spent). A dispute won gives back what its
    chargeback took (a grant at the purchase's cost basis, reference
    `dispute-won:<dispute ids>:<purchase>`).
    Works from Stripe's totals, not from each event, so a repeat or an out-of-order event
    changes nothing. The caller holds the purchase's lock."""
    if purchase.grant_id is None or not purchase.payment_intent_id or not purchase.amount_paid:
        return
    refunded, disputed, won = _charged_back(purchase)
    refunded = max(refunded, purchase.amount_refunded)  # refunds only grow
    if disputed < purchase.amount_disputed and won:
        # Only a won dispute gives credits back; one that ends otherwise (refunded during
        # the dispute) keeps them taken, and the refund is counted as a refund.
        _give_back_won(purchase, disputed, won)
    before = _share(purchase, purchase.amount_refunded + purchase.amount_disputed)
    after = _share(purchase, refunded + disputed)
    if after > before:
        what = "refund" if refunded > purchase.amount_refunded else "dispute"
        taken = claw_back(
            grant=purchase.grant,
            credits=after - before,
            reason=f"Stripe {what} on {purchase.payment_intent_id}: "
            f"{format_decimal(refunded)} refunded, {format_decimal(disputed)} disputed of "
            f"{format_decimal(purchase.amount_paid)} {purchase.currency}",
        )
        purchase.credits_clawed_back += taken
        if what == "dispute":
            purchase.credits_disputed += taken
    purchase.amount_refunded, purchase.amount_disputed = refunded, disputed
    purchase.save(update_fields=["amount_refunded", "amount_disputed", "credits_clawed_back",
                                 "credits_disputed"])  # fmt: skip


def _give_back_won(purchase, disputed, won):
    """Disputes were won: return their part of the credits the chargebacks took."""
    returned = purchase.credits_disputed * (purchase.amount_disputed - disputed)
    credits = (returned / purchase.amount_disputed).quantize(
        Decimal(1).scaleb(-CREDIT_PLACES), rounding=ROUND_DOWN
    )
    if credits > 0:
        grant = purchase.grant
        grant_credits(
            account=purchase.account,
            credit_type=purchase.credit_pack.credit_type,
            amount=credits,
            source=CreditGrant.Source.PURCHASE,
            expires_at=grant.expires_at,
            unit_price=grant.unit_price,
            currency=grant.currency,
            reference=f"dispute-won:{','.join(sorted(won))}:{purchase.pk}"[:255],
            reason=f"Stripe dispute won on {purchase.payment_intent_id}: credits returned",
            in_caller_transaction=True,
        )
    purchase.credits_disputed -= credits
    purchase.credits_clawed_back -= credits


def _share(purchase, amount):
    """The purchase's credits that `amount` of its price paid for (at most all of them),
    rounded down: computed on totals, so partial refunds in steps add up exactly."""
    amount = min(amount, purchase.amount_paid)
    return (purchase.credits * amount / purchase.amount_paid).quantize(
        Decimal(1).scaleb(-CREDIT_PLACES), rounding=ROUND_DOWN
    )


def _charged_back(purchase):
    """(refunded, charged back, ids of won disputes) so far for the purchase's payment, from
    dj-stripe's mirror."""
    refunded = Decimal(0)
    for charge in djstripe.Charge.objects.filter(payment_intent_id=purchase.payment_intent_id):
        refunded += from_minor_units(
            charge.stripe_data.get("amount_refunded", 0), purchase.currency
        )
    disputes = list(djstripe.Dispute.objects.filter(payment_intent_id=purchase.payment_intent_id))
    disputed = sum(
        (
            from_minor_units(d.stripe_data.get("amount", 0), purchase.currency)
            for d in disputes
            if d.stripe_data.get("status") in CHARGEBACK_STATUSES
        ),
        Decimal(0),
    )
    won = [d.id for d in disputes if d.stripe_data.get("status") == "won"]
    return refunded, disputed, won
