"""Auto-recharge: when an account's available credits fall below its threshold, buy the
chosen pack with the saved card, off-session (docs/billing.md).

A charge goes in three steps so that no crash can charge twice or grant twice: (1) a short
transaction claims the crossing (disarms, numbers the attempt, marks it under way); (2) the
PaymentIntent is created outside any transaction with an idempotency key made of the attempt
number, so a retry of a cut attempt gets the same PaymentIntent back; (3) a transaction
records the Purchase and grants it (reference = the PaymentIntent id, as the
payment_intent.succeeded webhook would), or records the failure and alerts."""

from datetime import UTC, datetime
from decimal import Decimal

import stripe
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from apps.core.decimals import format_decimal
from apps.core.jobs import JobCounts
from apps.wallets.models import Wallet
from apps.webhooks.services import record_events

from .models import AutoRecharge, Purchase


def run_auto_recharges(*, now=None, on_chunk=None):
    """The job (every minute): re-arm recharges whose balance is back at or above the
    threshold, then charge those below it that are armed, and finish any cut attempt."""
    now = now or timezone.now()
    counts = JobCounts()
    below = Wallet.objects.filter(
        account_id=OuterRef("account_id"),
        credit_type_id=OuterRef("credit_pack__credit_type_id"),
        balance__lt=OuterRef("threshold") + F("held"),
    )
    with_wallet = Wallet.objects.filter(
        account_id=OuterRef("account_id"), credit_type_id=OuterRef("credit_pack__credit_type_id")
    )
    AutoRecharge.objects.filter(armed=False, charging_since__isnull=True).filter(
        ~Exists(below) & Exists(with_wallet)
    ).update(armed=True)
    due = AutoRecharge.objects.filter(enabled=True).filter(
        Q(armed=True, charging_since__isnull=True) & Exists(below) | Q(charging_since__isnull=False)
    )
    for pk in due.order_by("pk").values_list("pk", flat=True):
        _recharge(pk, now, counts)
    if on_chunk is not None:
        on_chunk(counts)
    return counts


def _recharge(pk, now, counts):
    with transaction.atomic(durable=True):
        # Why the lock: two copies of the job must not both claim one crossing.
        recharge = (
            AutoRecharge.objects.select_for_update(skip_locked=True)
            .select_related("account", "credit_pack")
            .filter(pk=pk)
            .first()
        )
        if recharge is None:
            return
        if recharge.charging_since is None:
            refusal = _refusal(recharge, now)
            recharge.armed = False
            recharge.last_attempt_at = now
            if refusal:
                recharge.last_result = refusal
                recharge.save()
                _alert(recharge, "auto_recharge.failed", {"reason": refusal}, now)
                counts.fail(f"auto-recharge {pk}", RuntimeError(refusal))
                return
            recharge.attempt += 1
            recharge.charging_since = now
            recharge.save()
    _charge(recharge, now, counts)


def _refusal(recharge, now):
    pack = recharge.credit_pack
    if not pack.active or pack.stripe_price_id is None:
        return "pack_not_on_sale"
    month = datetime(now.year, now.month, 1, tzinfo=UTC)
    spent = Purchase.objects.filter(
        account=recharge.account,
        origin=Purchase.Origin.AUTO_RECHARGE,
        status=Purchase.Status.PAID,
        paid_at__gte=month,
    ).aggregate(total=Sum("amount_paid"))["total"] or Decimal(0)
    if spent + pack.price > recharge.monthly_cap:
        return "monthly_cap_reached"
    return None


def _charge(recharge, now, counts):
    from .services import api_key, stripe_customer, to_minor_units

    pack, account = recharge.credit_pack, recharge.account
    metadata = {"creditdesk_account": account.external_id, "credit_pack": pack.code,
                "creditdesk_auto_recharge": str(recharge.attempt)}  # fmt: skip
    try:
        customer = stripe_customer(account=account)
        methods = stripe.Customer.list_payment_methods(customer.id, api_key=api_key(), limit=1)
        if not methods["data"]:
            return _failed(recharge, "no_saved_card", now, counts)
        intent = stripe.PaymentIntent.create(
            api_key=api_key(),
            idempotency_key=f"creditdesk-recharge-{recharge.pk}-{recharge.attempt}",
            customer=customer.id,
            payment_method=methods["data"][0]["id"],
            amount=to_minor_units(pack.price, pack.currency),
            currency=pack.currency.lower(),
            off_session=True,
            confirm=True,
            description=f"Auto-recharge: {pack.name}",
            metadata=metadata,
        )
    except stripe.CardError as error:
        return _failed(recharge, error.code or "card_declined", now, counts)
    except stripe.StripeError as error:  # Stripe unreachable: the next run retries, same key
        counts.fail(f"auto-recharge {recharge.pk}", error)
        return None
    with transaction.atomic(durable=True):
        from .services import grant_paid_purchase

        purchase = grant_paid_purchase(
            account=account, credit_pack=pack, payment_intent=intent,
            origin=Purchase.Origin.AUTO_RECHARGE,
        )  # fmt: skip
        wallet = Wallet.objects.get(account=account, credit_type_id=pack.credit_type_id)
        AutoRecharge.objects.filter(pk=recharge.pk).update(
            charging_since=None,
            last_result=f"bought {pack.code} ({intent['id']})",
            # The pack ended this crossing if it lifted available credits back to the
            # threshold: the next dip below is a new one, whenever the job looks.
            armed=wallet.balance - wallet.held >= recharge.threshold,
        )
        bought = {"payment_intent": intent["id"], "credits": format_decimal(purchase.credits)}
        _alert(recharge, "auto_recharge.succeeded", bought, now)
    counts.recharges += 1
    return purchase


def _failed(recharge, reason, now, counts):
    with transaction.atomic(durable=True):
        AutoRecharge.objects.filter(pk=recharge.pk).update(charging_since=None, last_result=reason)
        _alert(recharge, "auto_recharge.failed", {"reason": reason}, now)
    counts.fail(f"auto-recharge {recharge.pk}", RuntimeError(reason))


def _alert(recharge, event_type, data, now):
    pack = recharge.credit_pack
    data = {"credit_pack": pack.code, "credit_type": pack.credit_type.code, **data}
    record_events(events=[(recharge.account_id, event_type, data)], now=now)
