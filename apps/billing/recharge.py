"""Auto-recharge: when an account's available credits fall below its threshold, buy the
chosen pack with the saved card, off-session (docs/billing.md).

A charge goes in three steps so that no crash can charge twice or grant twice: (1) a short
transaction claims the crossing (disarms, numbers the attempt, marks it under way); (2) the
PaymentIntent is created outside any transaction with an idempotency key made of the attempt
number, so a retry of a cut attempt gets the same PaymentIntent back; (3) a transaction
records the Purchase and grants it (reference = the PaymentIntent id, as the
payment_intent.succeeded webhook would), or records the failure and alerts; ending an
attempt is a conditional update on its number, so it ends (and alerts) once. A run reads
the terms again under the row lock, so a list older than another run's charge buys nothing.
An attempt is taken for cut only RESUME_AFTER after its claim, and is then finished (even
if the terms were disabled since), never charged again once its payment has arrived or
Stripe has forgotten its idempotency key."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import stripe
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Sum

from apps.core import clock
from apps.core.decimals import format_decimal
from apps.core.errors import DomainError
from apps.jobs.counts import JobCounts
from apps.wallets.models import Wallet
from apps.webhooks.services import record_events

from .checkout import stripe_customer
from .gateway import stripe_request, to_minor_units
from .models import AutoRecharge, Purchase
from .purchases import grant_paid_purchase

# A charge in flight takes seconds (Stripe's client gives up after 80 s); one whose claim is
# older than this was cut and is finished by the next run. Stripe keeps an idempotency key
# for 24 hours: an attempt cut longer ago than that is not charged again blindly.
RESUME_AFTER = timedelta(minutes=5)
IDEMPOTENCY_KEPT = timedelta(hours=23)


def _below_threshold():
    return Wallet.objects.filter(
        account_id=OuterRef("account_id"),
        credit_type_id=OuterRef("credit_pack__credit_type_id"),
        balance__lt=OuterRef("threshold") + F("held"),
    )


def _due(now):
    """Armed terms below their threshold, and attempts cut long enough ago (whatever
    `enabled` says now: money may have moved)."""
    fresh = Q(enabled=True, armed=True, charging_since__isnull=True) & Exists(_below_threshold())
    return fresh | Q(charging_since__lte=now - RESUME_AFTER)


def run_auto_recharges(*, now=None, on_chunk=None):
    """The job (every minute): re-arm recharges whose balance is back at or above the
    threshold, then charge those below it that are armed, and finish any cut attempt."""
    now = now or clock.now()
    counts = JobCounts()
    with_wallet = Wallet.objects.filter(
        account_id=OuterRef("account_id"), credit_type_id=OuterRef("credit_pack__credit_type_id")
    )
    AutoRecharge.objects.filter(armed=False, charging_since__isnull=True).filter(
        ~Exists(_below_threshold()) & Exists(with_wallet)
    ).update(armed=True)
    for pk in AutoRecharge.objects.filter(_due(now)).order_by("pk").values_list("pk", flat=True):
        _recharge(pk, now, counts)
    if on_chunk is not None:
        on_chunk(counts)
    return counts


def _recharge(pk, now, counts):
    with transaction.atomic(durable=True):
        # Why the lock: two copies of the job must not both claim one crossing. The terms
        # are read again under it: the list may be older than another run's charge.
        recharge = (
            AutoRecharge.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("account", "credit_pack__credit_type")
            .filter(_due(now), pk=pk)
            .first()
        )
        if recharge is None:
            return
        ending = None
        if recharge.charging_since is not None:  # cut: finish it, never a second charge
            if _already_paid(recharge):
                ending = {"paid": True}
            elif recharge.charging_since < now - IDEMPOTENCY_KEPT:
                ending = {"reason": "interrupted_attempt_expired"}
        else:
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
    if ending is not None:
        return _settle(recharge, now, counts, **ending)
    return _charge(recharge, now, counts)


def _already_paid(recharge):
    """The cut attempt's money arrived (payment_intent.succeeded granted it)."""
    return Purchase.objects.filter(
        account_id=recharge.account_id,
        origin=Purchase.Origin.AUTO_RECHARGE,
        created_at__gte=recharge.charging_since,
    ).exists()


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
    pack, account = recharge.credit_pack, recharge.account
    metadata = {"creditdesk_account": account.external_id, "credit_pack": pack.code,
                "creditdesk_auto_recharge": str(recharge.attempt)}  # fmt: skip
    try:
        customer = stripe_customer(account=account)
        methods = stripe_request(stripe.Customer.list_payment_methods, customer.id, limit=1)
        if not methods["data"]:
            return _settle(recharge, now, counts, reason="no_saved_card")
        intent = stripe_request(
            stripe.PaymentIntent.create,
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
        return _settle(recharge, now, counts, reason=error.code or "card_declined")
    except stripe.IdempotencyError:  # the pack changed since the attempt was claimed
        return _settle(recharge, now, counts, reason="pack_changed_during_attempt")
    except (stripe.StripeError, DomainError) as error:  # the next run retries, same key
        counts.fail(f"auto-recharge {recharge.pk}", error)
        return None
    if intent["status"] != "succeeded":  # processing: its webhook, or the next run, finishes
        return None
    return _settle(recharge, now, counts, paid=True, intent=intent)


def _settle(recharge, now, counts, *, paid=False, intent=None, reason=None):
    """End the attempt once: grant (if the intent is given) and record the result, alert."""
    pack, account = recharge.credit_pack, recharge.account
    with transaction.atomic(durable=True):
        purchase = None
        if intent is not None:
            purchase = grant_paid_purchase(
                account=account, credit_pack=pack, payment_intent=intent,
                origin=Purchase.Origin.AUTO_RECHARGE,
            )  # fmt: skip
        wallet = Wallet.objects.filter(account=account, credit_type_id=pack.credit_type_id).first()
        available = wallet.balance - wallet.held if wallet else Decimal(0)
        result = f"bought {pack.code} ({intent['id']})" if intent else (reason or "bought")
        ended = AutoRecharge.objects.filter(
            pk=recharge.pk, attempt=recharge.attempt, charging_since__isnull=False
        ).update(
            charging_since=None,
            last_result=result[:255],
            # A pack that lifted available credits back to the threshold ended this
            # crossing: the next dip below is a new one, whenever the job looks.
            armed=paid and available >= recharge.threshold,
        )
        if not ended:  # another run ended this attempt first
            return purchase
        if paid:
            bought = {"credits": format_decimal(pack.credits)}
            if intent is not None:
                bought["payment_intent"] = intent["id"]
            _alert(recharge, "auto_recharge.succeeded", bought, now)
        else:
            _alert(recharge, "auto_recharge.failed", {"reason": reason}, now)
    if paid:
        counts.recharges += 1
    else:
        counts.fail(f"auto-recharge {recharge.pk}", RuntimeError(reason))
    return purchase


def _alert(recharge, event_type, data, now):
    pack = recharge.credit_pack
    data = {"credit_pack": pack.code, "credit_type": pack.credit_type.code, **data}
    record_events(events=[(recharge.account_id, event_type, data)], now=now)
