"""CreditDesk's connection to Stripe: the API key, one way to call Stripe, amounts in
Stripe's minor units, and the webhook endpoint Stripe calls back (docs/billing.md).

Calls to Stripe never run inside a database transaction that holds a lock: each is made
first, and what it returns is written in a short transaction after.
"""

import logging
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import stripe
from django.db import transaction
from djstripe import models as djstripe
from djstripe.settings import djstripe_settings

from apps.core import metrics
from apps.core.currencies import (  # noqa: F401 - billing's callers import them from here
    ZERO_DECIMAL_CURRENCIES,
    currency_places,
    in_smallest_unit,
)
from apps.core.errors import InvalidInput, PaymentProviderError

logger = logging.getLogger(__name__)


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


def first_item(data):
    """A Stripe subscription's (JSON) first item, {} without one."""
    items = (data.get("items") or {}).get("data") or [{}]
    return items[0]


def subscription_period(data):
    """A Stripe subscription's (JSON) current period: on its item since API version
    2025-03-31, on the subscription before."""
    item = first_item(data)
    start = item.get("current_period_start") or data.get("current_period_start")
    end = item.get("current_period_end") or data.get("current_period_end")
    return from_timestamp(start), from_timestamp(end)


def api_key():
    key = djstripe_settings.STRIPE_SECRET_KEY
    if not key:
        raise PaymentProviderError(
            "Stripe is not configured: set STRIPE_TEST_SECRET_KEY or STRIPE_LIVE_SECRET_KEY."
        )
    return key


def stripe_request(operation, *args, missing_ok=False, **params):
    """One Stripe API call with the configured key. A failure is counted in the metrics and
    raised as Stripe's own error, for the callers that tell Stripe's errors apart (a declined
    card, a reused idempotency key); every call CreditDesk makes goes through here (dj-stripe's
    `sync_from_stripe_data` may fetch related objects by itself: those are not counted).
    `missing_ok`: "no such object" is an answer the caller expects, and is not counted."""
    try:
        return operation(*args, api_key=api_key(), **params)
    except stripe.StripeError as error:
        if not (missing_ok and error.code == "resource_missing"):
            metrics.count_stripe_error(operation=_name(operation), error=type(error).__name__)
        raise


def call_stripe(operation, **params):
    """stripe_request, with Stripe's failures as PaymentProviderError (logged with Stripe's
    request id)."""
    try:
        return stripe_request(operation, **params)
    except stripe.StripeError as error:
        logger.warning("Stripe refused %s: %s", _name(operation), error)
        problem = PaymentProviderError(
            f"Stripe: {error.user_message or 'the request failed'}",
            details={"stripe_request_id": error.request_id, "stripe_code": error.code},
        )
        # No answer, or Stripe's own error: the request may have taken effect at Stripe.
        problem.outcome_unknown = isinstance(error, (stripe.APIConnectionError, stripe.APIError))
        raise problem from None


def _name(operation):
    return getattr(operation, "__qualname__", "")  # "Customer.create"


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
            remote = stripe_request(stripe.WebhookEndpoint.retrieve, endpoint.id, missing_ok=True)
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
