"""Ledger services for grants and staff corrections. Each is one durable transaction that
locks the wallet before touching its grants (apps/wallets/ledger.py)."""

from decimal import Decimal

from django.db import transaction

from apps.core import clock
from apps.core.allocation import cost_basis
from apps.core.decimals import (
    CREDIT_DIGITS,
    CREDIT_PLACES,
    UNIT_PRICE_DIGITS,
    UNIT_PRICE_PLACES,
    DecimalInputError,
    parse_decimal,
)
from apps.core.errors import IdempotencyKeyReused, InvalidInput
from apps.jobs.counts import in_parallel

from .ledger import LedgerBook, retry_on_idempotency_race, sweep_wallets
from .models import API_REFERENCE_PREFIX, CreditGrant, LedgerEntry


def _credits(value, field, *, allow_negative=False):
    try:
        amount = parse_decimal(
            value, places=CREDIT_PLACES, digits=CREDIT_DIGITS, allow_negative=allow_negative
        )
    except DecimalInputError as exc:
        raise InvalidInput(f"{field} {exc}.", details={field: [str(exc)]}) from None
    if amount == 0:
        raise InvalidInput(f"{field} must not be zero.", details={field: ["must not be zero"]})
    return amount


def _reason(reason):
    if not reason or not str(reason).strip():
        raise InvalidInput(
            "Give a reason; it is kept in the ledger.", details={"reason": ["required"]}
        )
    return str(reason).strip()


def grant_credits(*, account, credit_type, amount, source, expires_at=None, priority=None,
                  unit_price=0, basis_amount=None, currency="USD", plan=None, reference=None,
                  reason="", acting_user=None, api_key=None, ledger_kind=LedgerEntry.Kind.GRANT,
                  in_caller_transaction=False):  # fmt: skip
    """Add a grant to the account's wallet for `credit_type`, paying back any overage debt
    first. Idempotent by `reference`: the same reference returns the first grant with
    `created=False`; the same reference with other terms is IdempotencyKeyReused.
    Returns `(grant, created)`. `in_caller_transaction`: part of a use case whose transaction
    the caller opened (a Stripe event, inside dj-stripe's); a savepoint then, not durable.
    `api_key`: the API key making the grant, recorded on it; its `reference` is then the
    caller's idempotency key, kept as `api:<key>` (per account, whichever API key sends it),
    a namespace no other reference may use. `basis_amount`: what was paid for the credits
    (docs/revenue.md); by default `amount` × `unit_price` to the cent; always 0 for the free
    sources (promo, manual, trial)."""
    reference = _namespaced(reference, api_key=api_key)
    amount = _credits(amount, "amount")
    if amount < 0:
        raise InvalidInput("amount must be positive.", details={"amount": ["must be > 0"]})
    if source not in CreditGrant.Source.values:
        raise InvalidInput(f"Unknown source {source!r}.", details={"source": ["unknown"]})
    try:
        unit_price = parse_decimal(unit_price, places=UNIT_PRICE_PLACES, digits=UNIT_PRICE_DIGITS)
    except DecimalInputError as exc:
        raise InvalidInput(f"unit_price {exc}.", details={"unit_price": [str(exc)]}) from None
    if source in CreditGrant.FREE_SOURCES:
        basis_amount = Decimal(0)
    elif basis_amount is None:
        basis_amount = cost_basis(amount, unit_price, currency=currency)
    now = clock.now()
    priority = CreditGrant.DEFAULT_PRIORITY if priority is None else priority
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 32767:
        raise InvalidInput("priority must be 0-32767.", details={"priority": ["0-32767"]})
    terms = {
        "credit_type_id": credit_type.pk,
        "amount": amount,
        "source": source,
        "expires_at": expires_at,
        "priority": priority,
        "unit_price": unit_price,
        "basis_amount": basis_amount,
        "currency": currency,
        "plan_id": plan.pk if plan is not None else None,
    }

    def attempt():
        with transaction.atomic(durable=not in_caller_transaction):
            return _grant(account, terms, reference, reason, acting_user, api_key, ledger_kind,
                          now)  # fmt: skip

    return retry_on_idempotency_race(attempt)


def _namespaced(reference, *, api_key):
    prefix = API_REFERENCE_PREFIX
    if api_key is not None:
        return None if reference is None else f"{prefix}{reference}"
    if reference is not None and reference.startswith(prefix):
        raise InvalidInput(
            f"References starting {prefix!r} belong to grants made over the API.",
            details={"reference": [f"must not start with {prefix!r}"]},
        )
    return reference


def _same_terms(grant, terms):
    return (
        grant.wallet.credit_type_id == terms["credit_type_id"]
        and grant.amount == terms["amount"]
        and grant.source == terms["source"]
        and grant.expires_at == terms["expires_at"]
        and grant.priority == terms["priority"]
        and grant.unit_price == terms["unit_price"]
        and grant.basis_amount == terms["basis_amount"]
        and grant.currency == terms["currency"]
        and grant.plan_id == terms["plan_id"]
    )


def _grant(account, terms, reference, reason, acting_user, api_key, kind, now):
    if reference is not None:
        prior = (
            CreditGrant.objects.select_related("wallet")
            .filter(account=account, reference=reference)
            .first()
        )
        if prior is not None:
            if not _same_terms(prior, terms):
                raise IdempotencyKeyReused(
                    f"Reference {reference!r} already granted credits on other terms."
                )
            return prior, False
    # Checked after the replay lookup: a retry of a grant whose expiry has passed since
    # must replay it, not fail.
    if terms["expires_at"] is not None and terms["expires_at"] <= now:
        raise InvalidInput(
            "expires_at must be in the future.",
            details={"expires_at": ["must be in the future"]},
        )
    book = LedgerBook(now=now)
    key = (account.pk, terms["credit_type_id"])
    book.lock(keys=[key], create=True)
    grant = book.states[key].add_grant(
        CreditGrant(
            source=terms["source"],
            amount=terms["amount"],
            priority=terms["priority"],
            effective_at=now,
            expires_at=terms["expires_at"],
            unit_price=terms["unit_price"],
            basis_amount=terms["basis_amount"],
            currency=terms["currency"],
            plan_id=terms["plan_id"],
            reference=reference,
            reason=reason or "",
            created_by=acting_user,
            api_key=api_key,
            created_at=now,
        ),
        kind=kind,
        acting_user=acting_user,
        reason=reason or "",
    )
    book.flush()
    return grant, True


def void_grant(*, grant, reason, acting_user=None):
    """Claw back what is left of a grant (e.g. a refunded purchase). Spent credits stay spent."""
    reason = _reason(reason)
    with transaction.atomic(durable=True):
        book = LedgerBook()
        key = (grant.account_id, grant.wallet.credit_type_id)
        state = book.lock(keys=[key])[key]
        fresh = next((g for g in state.grants if g.pk == grant.pk), None)
        if fresh is None:
            raise InvalidInput(
                "This grant has no credits left to void.", details={"grant": ["nothing left"]}
            )
        state.void(fresh, acting_user=acting_user, reason=reason)
        book.flush()
        return fresh


def claw_back(*, grant, credits, reason, acting_user=None):
    """Take up to `credits` back from `grant` (a refunded share of a purchase): only what is
    left of it, so a balance never goes below zero for it. Runs in the caller's transaction
    (a Stripe event's). Returns the credits taken."""
    reason = _reason(reason)
    with transaction.atomic():
        book = LedgerBook()
        key = (grant.account_id, grant.wallet.credit_type_id)
        state = book.lock(keys=[key])[key]
        fresh = next((g for g in state.grants if g.pk == grant.pk), None)
        taken = min(credits, fresh.remaining) if fresh is not None else Decimal(0)
        if taken > 0:
            state.claw_back(fresh, taken, acting_user=acting_user, reason=reason)
            book.flush()
        return taken


def adjust(*, account, credit_type, amount, reason, acting_user=None):
    """A staff correction. Positive: a manual grant recorded as `adjust`. Negative: claw back
    that many available credits in burn-down order (never into overdraft)."""
    reason = _reason(reason)
    amount = _credits(amount, "amount", allow_negative=True)
    if amount > 0:
        grant, _ = grant_credits(
            account=account,
            credit_type=credit_type,
            amount=amount,
            source=CreditGrant.Source.MANUAL,
            reason=reason,
            acting_user=acting_user,
            ledger_kind=LedgerEntry.Kind.ADJUST,
        )
        return grant.wallet
    with transaction.atomic(durable=True):
        book = LedgerBook()
        key = (account.pk, credit_type.pk)
        book.lock(keys=[key], create=True)
        state = book.states[key]
        state.check_funds(-amount, overdraft_limit=Decimal(0))
        state.charge(-amount, kind=LedgerEntry.Kind.ADJUST, acting_user=acting_user, reason=reason)
        book.flush()
        return state.wallet


def expire_grants(*, now=None, chunk_size=1000, on_chunk=None, workers=None):
    """Close every grant past `expires_at` that still has credits (plan-period grants roll
    over by their terms, the rest expires), a chunk of wallets per transaction. Returns
    JobCounts. Safe beside consumption and beside a second copy of itself."""
    now = now or clock.now()
    due = CreditGrant.objects.filter(remaining__gt=0, expires_at__lte=now)
    failed = set()  # wallets that failed alone, for every worker

    def run(counts, on_chunk):
        sweep_wallets(
            due=due,
            work=lambda book: None,  # locking the wallets closes what is past due
            counts=counts,
            now=now,
            chunk_size=chunk_size,
            on_chunk=on_chunk,
            failed=failed,
        )

    return in_parallel(run, on_chunk=on_chunk, workers=workers)
