"""What Stripe's events do to credit-pack purchases: a paid Checkout or auto-recharge
payment grants the pack once, at the price paid; refunds and chargebacks claw back its share,
a won dispute gives it back; a payment that does not match what was sold grants nothing and
is reported (`purchase.mismatch`).

These run inside dj-stripe's webhook transaction (the event is recorded and acted on
together, or not at all, and Stripe delivers it again), so they lock and write in the
caller's transaction: the purchase row first, then wallets as the ledger does.
"""

import logging
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from django.db.models import Q
from djstripe import models as djstripe

from apps.accounts.models import Account
from apps.catalog.models import CreditPack
from apps.core import clock
from apps.core.decimals import CREDIT_PLACES, UNIT_PRICE_PLACES, format_decimal
from apps.revenue.services import record_cash_refund
from apps.wallets.models import CreditGrant
from apps.wallets.services import claw_back, grant_credits
from apps.webhooks.services import record_events

from .gateway import from_minor_units, to_minor_units
from .models import PlanCheckout, Purchase
from .templatetags.billing import money  # staff read "10.00 USD"

logger = logging.getLogger(__name__)


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
    now = clock.now()
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
        basis_amount=amount_paid,
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
    paid_back = refunded + disputed - purchase.amount_refunded - purchase.amount_disputed
    if disputed < purchase.amount_disputed and won:
        # Only a won dispute gives credits back; one that ends otherwise (refunded during
        # the dispute) keeps them taken, and the refund is counted as a refund.
        # The credits returned bill their basis again: the rest of the money returned
        # undoes the chargeback's refund of revenue recognised already.
        paid_back += _give_back_won(purchase, disputed, won)
    if paid_back:
        record_cash_refund(
            grant=purchase.grant, amount=paid_back,
            reason=f"Stripe {purchase.payment_intent_id}: {format_decimal(refunded)} refunded, "
            f"{format_decimal(disputed)} disputed",
        )  # fmt: skip
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
    """Disputes were won: return their part of the credits the chargebacks took. Returns the
    basis of the credits returned."""
    returned = purchase.credits_disputed * (purchase.amount_disputed - disputed)
    credits = (returned / purchase.amount_disputed).quantize(
        Decimal(1).scaleb(-CREDIT_PLACES), rounding=ROUND_DOWN
    )
    basis = Decimal(0)
    if credits > 0:
        grant = purchase.grant
        returned, created = grant_credits(
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
        # Only credits returned now bill again (a replay finds the grant made before).
        basis = returned.basis_amount if created else Decimal(0)
    purchase.credits_disputed -= credits
    purchase.credits_clawed_back -= credits
    return basis


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
