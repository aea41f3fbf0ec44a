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
from djstripe import models as djstripe

from apps.accounts.models import Account
from apps.accounts.selectors import live_subscription
from apps.catalog.selectors import public_credit_packs, public_plans
from apps.core import clock
from apps.core.decimals import format_decimal
from apps.usage.selectors import credits_used_by_day
from apps.wallets.selectors import balances

from .gateway import from_minor_units, from_timestamp
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
    """A fresh link to the account's billing page. It carries when it was made by the clock
    every decision reads (apps/core/clock.py), so that it expires by the demo clock too."""
    issued = clock.now().timestamp()
    token = signing.dumps({"account": account.pk, "at": issued}, salt=SALT, compress=False)
    path = reverse("billing:page", kwargs={"token": token})
    expires_at = datetime.fromtimestamp(issued, UTC) + max_age()
    return BillingLink(url=urljoin(settings.SITE_URL, path), expires_at=expires_at)


def account_for_token(*, token):
    """The account a link was made for, or BillingLinkInvalid."""
    try:
        payload = signing.loads(token, salt=SALT)
        issued = payload.get("at")
        if isinstance(issued, bool) or not isinstance(issued, int | float):
            # A link made before links carried their moment: by the signer's own time.
            signing.loads(token, salt=SALT, max_age=max_age())
        elif clock.now() - datetime.fromtimestamp(issued, UTC) > max_age():
            raise signing.SignatureExpired("the billing link has expired")
    except signing.SignatureExpired:
        raise BillingLinkInvalid("expired") from None
    except (signing.BadSignature, AttributeError, OverflowError, OSError, ValueError):
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


@dataclass
class UsageSeries:
    credit_type: str
    days: list
    total: Decimal


def usage_by_day(*, account, days=USAGE_DAYS, today=None):
    """Per credit type that was used: credits per UTC day over the last `days` days, oldest
    first, empty days as 0, with the bars of the page's chart."""
    today = today or clock.now().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    used = {}
    for row in credits_used_by_day(account=account, since=since):
        used.setdefault(row["code"], {})[row["day"]] = row["credits"]
    return [
        _series(
            code,
            [
                UsageDay(day=d, credits=by_day.get(d, Decimal(0)))
                for d in (first + timedelta(days=i) for i in range(days))
            ],
        )  # fmt: skip
        for code, by_day in sorted(used.items())
    ]


def _series(code, series):
    peak = max((d.credits for d in series), default=Decimal(0))
    for index, day in enumerate(series):
        height = day.credits / peak * 98 if peak else Decimal(0)
        if day.credits and height < 1:
            height = Decimal(1)  # a day with any use shows
        day.x, day.height, day.y = index * 10 + 1, f"{height:.2f}", f"{99 - height:.2f}"
    return UsageSeries(credit_type=code, days=series, total=sum((d.credits for d in series),
                                                                 Decimal(0)))  # fmt: skip


@dataclass
class PaymentLine:
    """A row of the page's "Invoices and payments": a Stripe invoice or a pack bought."""

    created: object
    what: str
    amount: Decimal
    currency: str
    status: str
    status_label: str
    url: str = ""
    note: str = ""


def _invoice_line(data):
    currency = (data.get("currency") or "usd").upper()
    status = data.get("status") or ""
    return PaymentLine(
        created=from_timestamp(data.get("created")),
        what=f"Invoice {data.get('number') or data.get('id', '')}",
        amount=from_minor_units(data.get("total") or data.get("amount_due") or 0, currency),
        currency=currency,
        status=status,
        status_label=status.replace("_", " ").capitalize(),
        url=data.get("hosted_invoice_url") or "",
    )


def _purchase_line(purchase):
    refunded = purchase.amount_refunded + purchase.amount_disputed
    what = purchase.credit_pack.name
    if purchase.origin == Purchase.Origin.AUTO_RECHARGE:
        what += " (auto-recharge)"
    return PaymentLine(
        created=purchase.paid_at or purchase.created_at,
        what=what,
        amount=purchase.amount_paid or purchase.price,
        currency=purchase.currency,
        status=purchase.status,
        status_label=purchase.get_status_display(),
        note=f"{format_decimal(refunded)} {purchase.currency} refunded" if refunded else "",
    )


def payments(*, account, limit=24):
    """Invoices and pack payments, newest first (checkouts never paid left out)."""
    invoices = djstripe.Invoice.objects.filter(customer__subscriber=account).order_by("-created")
    bought = (
        Purchase.objects.filter(account=account)
        .exclude(status=Purchase.Status.OPEN)
        .select_related("credit_pack")
        .order_by("-created_at")
    )
    lines = [_invoice_line(i.stripe_data) for i in invoices[:limit]]
    lines += [_purchase_line(p) for p in bought[:limit]]
    lines.sort(key=lambda line: line.created or datetime.min.replace(tzinfo=UTC), reverse=True)
    return lines[:limit]


@dataclass
class PlanOffer:
    plan: object
    label: str
    switch: bool  # a Stripe subscription changes price; else a new Checkout


def plan_offers(*, subscription):
    """The plans the customer may choose: through Checkout without a Stripe subscription;
    with one, a switch at period end to a plan of the same billing interval (or back to
    the current plan while a switch is scheduled). Plans are told apart by code: the plan
    the customer is on, in any version, is theirs (staying keeps their version)."""
    offers = []
    stripe_subscribed = subscription is not None and bool(subscription.stripe_subscription_id)
    mine = subscription.plan.code if subscription is not None else None
    scheduled = subscription.scheduled_plan if subscription is not None else None
    for plan in public_plans():
        if plan.stripe_price_id is None:
            continue
        if not stripe_subscribed:
            if plan.code != mine:
                offers.append(PlanOffer(plan, f"Subscribe to {plan.name}", switch=False))
            continue
        if plan.billing_interval != subscription.plan.billing_interval:
            continue
        if plan.code == mine and scheduled is not None and scheduled.code != mine:
            offers.append(PlanOffer(plan, f"Stay on {plan.name}", switch=True))
        elif plan.code not in (mine, scheduled.code if scheduled else None):
            offers.append(PlanOffer(plan, f"Switch to {plan.name}", switch=True))
    return offers


def billing_page(*, account):
    """Everything the page shows, read in one place."""
    subscription = live_subscription(account=account)
    today = clock.now().date()
    return {
        "account": account,
        "wallets": balances(account=account),
        "subscription": subscription,
        "plan_offers": plan_offers(subscription=subscription),
        "packs": [p for p in public_credit_packs() if p.stripe_price_id],
        "payments": payments(account=account),
        "usage": usage_by_day(account=account, today=today),
        "usage_from": today - timedelta(days=USAGE_DAYS - 1),
    }
