"""The hosted billing page: a signed, expiring link for one account (Django signing, no
session, no login), and what the page shows (docs/billing.md).

The link carries the account's id and the time it was signed, under SECRET_KEY and a salt
of its own, so it cannot be altered or made to point at another account, and it stops
working BILLING_LINK_MAX_AGE_MINUTES after it was made. Rotating SECRET_KEY voids every
link."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urljoin

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djstripe

from apps.accounts.models import Account
from apps.accounts.selectors import live_subscription
from apps.catalog.selectors import public_credit_packs, public_plans
from apps.usage.selectors import usage_totals
from apps.wallets.selectors import balances

from .models import Purchase

SALT = "creditdesk.billing-page"
USAGE_DAYS = 30


class BillingLinkInvalid(Exception):
    """The link was altered, has expired, or names an account that is gone."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason  # "expired" or "invalid"


@dataclass
class BillingLink:
    url: str
    expires_at: object


def max_age():
    return timedelta(minutes=settings.BILLING_LINK_MAX_AGE_MINUTES)


def billing_link(*, account):
    """A fresh link to the account's billing page."""
    token = signing.dumps({"account": account.pk}, salt=SALT, compress=False)
    path = reverse("billing:page", kwargs={"token": token})
    return BillingLink(url=urljoin(settings.SITE_URL, path), expires_at=timezone.now() + max_age())


def account_for_token(*, token):
    """The account a link was made for, or BillingLinkInvalid."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=max_age())
    except signing.SignatureExpired:
        raise BillingLinkInvalid("expired") from None
    except signing.BadSignature:
        raise BillingLinkInvalid("invalid") from None
    account = Account.objects.filter(pk=payload.get("account")).first()
    if account is None:
        raise BillingLinkInvalid("invalid")
    return account


@dataclass
class UsageDay:
    """One bar of the page's server-drawn SVG chart (a 300 × 100 view box, 10 per day)."""

    day: object
    credits: Decimal
    x: int = 0
    y: str = "100"
    height: str = "0"


def usage_by_day(*, account, days=USAGE_DAYS, today=None):
    """Credits used per UTC day over the last `days` days, oldest first, empty days as 0."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    used = {
        row["group"]: row["credits"]
        for row in usage_totals(account=account, group_by="day", since=since)
    }
    series = [UsageDay(day=d, credits=used.get(d, Decimal(0)))
              for d in (first + timedelta(days=i) for i in range(days))]  # fmt: skip
    peak = max((d.credits for d in series), default=Decimal(0))
    for index, day in enumerate(series):
        height = day.credits / peak * 98 if peak else Decimal(0)
        if day.credits and height < 1:
            height = Decimal(1)  # a day with any use shows
        day.x, day.height, day.y = index * 10 + 1, f"{height:.2f}", f"{99 - height:.2f}"
    return series


@dataclass
class InvoiceLine:
    number: str
    created: object
    amount: Decimal
    currency: str
    status: str
    url: str


def _invoice(data):
    from .services import from_minor_units

    currency = (data.get("currency") or "usd").upper()
    return InvoiceLine(
        number=data.get("number") or data.get("id", ""),
        created=_moment(data.get("created")),
        amount=from_minor_units(data.get("total") or data.get("amount_due") or 0, currency),
        currency=currency,
        status=data.get("status") or "",
        url=data.get("hosted_invoice_url") or "",
    )


def _moment(timestamp):
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


def billing_page(*, account):
    """Everything the page shows, read in one place."""
    subscription = live_subscription(account=account)
    plans = list(public_plans())
    stripe_subscribed = subscription is not None and bool(subscription.stripe_subscription_id)
    invoices = djstripe.Invoice.objects.filter(customer__subscriber=account).order_by("-created")
    usage = usage_by_day(account=account)
    return {
        "account": account,
        "wallets": balances(account=account),
        "subscription": subscription,
        "plans": [p for p in plans if subscription is None or p.pk != subscription.plan_id],
        "plan_checkout": not stripe_subscribed,
        "packs": [p for p in public_credit_packs() if p.stripe_price_id],
        "invoices": [_invoice(i.stripe_data) for i in invoices[:24]],
        "purchases": list(
            Purchase.objects.filter(account=account).select_related("credit_pack")[:24]
        ),
        "usage": usage,
        "usage_to": usage[-1].day,
        "usage_total": sum((d.credits for d in usage), Decimal(0)),
    }
