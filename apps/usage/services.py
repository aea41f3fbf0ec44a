"""Consumption: consume, batch, reservations. Each call is one durable transaction that
locks the wallets it charges (through the ledger engine) before reading their grants."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from apps.accounts.models import Account
from apps.core import clock
from apps.core.decimals import (
    format_decimal,
)
from apps.core.errors import (
    DomainError,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    ReservationNotHeld,
)
from apps.jobs.counts import in_parallel
from apps.wallets.bulk import PendingUsageEvent
from apps.wallets.ledger import (
    ZERO,
    LedgerBook,
    cost_of,
    retry_on_idempotency_race,
    sweep_wallets,
)
from apps.wallets.models import Reservation

from . import fast_path
from .entitlement import Counters, parse_quantity, resolve_terms, usable
from .models import UsageEvent
from .outcomes import ChargedUsage, Outcome
from .selectors import feature_terms, terms_for

METADATA_MAX_BYTES = 4096
IDEMPOTENCY_KEY_MAX = 255
RESERVATION_TTL_DEFAULT = 900
RESERVATION_TTL_MAX = 86400


# --- requests -------------------------------------------------------------------------------


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput(
            "metadata must be a JSON object.", details={"metadata": ["not an object"]}
        )
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        raise InvalidInput(
            f"metadata is {size} bytes; at most {METADATA_MAX_BYTES}.",
            details={"metadata": [f"at most {METADATA_MAX_BYTES} bytes of JSON"]},
        )
    return metadata


def _check_key(key):
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= IDEMPOTENCY_KEY_MAX):
        raise InvalidInput(
            "idempotency_key must be 1-255 characters.",
            details={"idempotency_key": ["1-255 characters"]},
        )
    return key


def _fingerprint(**payload):
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ConsumeRequest:
    account: Account
    feature: str
    quantity: Decimal
    idempotency_key: str | None = None
    metadata: dict = field(default_factory=dict)
    occurred_at: datetime | None = None

    @classmethod
    def build(cls, *, account, feature, quantity=1, idempotency_key=None, metadata=None,
              occurred_at=None):  # fmt: skip
        """Validate one consume; raises InvalidInput naming the field."""
        if not isinstance(feature, str) or not feature:
            raise InvalidInput("feature is required.", details={"feature": ["required"]})
        return cls(
            account=account,
            feature=feature,
            quantity=parse_quantity(quantity),
            idempotency_key=_check_key(idempotency_key),
            metadata=_check_metadata(metadata),
            occurred_at=occurred_at,
        )

    @property
    def fingerprint(self):
        return _fingerprint(
            op="consume",
            feature=self.feature,
            quantity=format_decimal(self.quantity),
            metadata=self.metadata,
            occurred_at=self.occurred_at.isoformat() if self.occurred_at else None,
        )


# --- consume ----------------------------------------------------------------------------------


def consume(*, account, feature, quantity=1, idempotency_key=None, metadata=None,
            occurred_at=None):  # fmt: skip
    """Charge `quantity` units of `feature` to `account`, all or nothing. Returns an Outcome
    (`replayed` when the idempotency key was seen with the same payload); raises the domain
    error otherwise, having written nothing."""
    request = ConsumeRequest.build(
        account=account,
        feature=feature,
        quantity=quantity,
        idempotency_key=idempotency_key,
        metadata=metadata,
        occurred_at=occurred_at,
    )
    [outcome] = consume_batch(requests=[request])
    if outcome.error:
        raise outcome.error
    return outcome


def consume_batch(*, requests):
    """Consume each request on its own merits, in order, in one transaction with one lock
    per wallet. Returns one Outcome per request."""
    if not requests:
        return []
    if fast_path.enabled():
        outcomes = fast_path.consume(requests)
        if outcomes is not None:
            return outcomes
    return retry_on_idempotency_race(lambda: _consume_in_transaction(requests))


def _consume_in_transaction(requests):
    now = clock.now()
    with transaction.atomic(durable=True):
        book = LedgerBook(now=now)
        accounts = {r.account.pk: r.account for r in requests}
        found = terms_for(pairs={(r.account.pk, r.feature) for r in requests})
        terms = {pk: {} for pk in accounts}
        for (account_id, code), t in found.items():
            terms[account_id][code] = t
        prior = _prior_events(requests)

        # Lock (and lazily expire) only what a usable event may charge, as the database
        # functions do: a refused event's wallet and counter are left alone.
        wanted, with_overdraft, chargeable = set(), set(), {pk: {} for pk in accounts}
        for r in requests:
            t = terms[r.account.pk].get(r.feature)
            if t and usable(r.account, t):
                key = (r.account.pk, t.credit_type_id)
                wanted.add(key)
                chargeable[r.account.pk][r.feature] = t
                if t.overdraft_limit > 0:
                    with_overdraft.add(key)
        book.lock(keys=wanted, create=with_overdraft)
        counters = Counters.load(chargeable, lock=True)

        outcomes, seen = [], {}
        for request in requests:
            outcome = _consume_one(request, terms[request.account.pk], book, counters, prior, seen)
            outcomes.append(outcome)
        if any(o.usage_event and not o.replayed for o in outcomes):
            book.flush()
            counters.save()
        else:
            # Nothing charged: leave even the lazy expiry unwritten, as the fast path does (the
            # expiry job or the next consume writes it).
            book.drop_unused_wallets()
    for outcome in outcomes:
        if outcome.usage_event is not None:
            outcome.usage_event = ChargedUsage.of(outcome.usage_event)
    return outcomes


def _prior_events(requests):
    match = Q()
    for r in requests:
        if r.idempotency_key:
            match |= Q(account_id=r.account.pk, idempotency_key=r.idempotency_key)
    if not match:
        return {}
    events = UsageEvent.objects.filter(match).select_related("account", "feature", "credit_type")
    return {(e.account_id, e.idempotency_key): e for e in events}


def _consume_one(request, terms, book, counters, prior, seen):
    key = (request.account.pk, request.idempotency_key)
    if request.idempotency_key:
        earlier = seen.get(key) or prior.get(key)
        if earlier is not None:
            if earlier.fingerprint != request.fingerprint:
                return Outcome(error=IdempotencyKeyReused())
            return Outcome(usage_event=earlier, replayed=True)
    try:
        event = charge_request(request, terms, book, counters)
    except DomainError as error:
        return Outcome(error=error)
    if request.idempotency_key:
        seen[key] = event
    return Outcome(usage_event=event)


def charge_request(request, terms, book, counters):
    """One consume's rules, in order: the terms that apply, the cost, the quota, the funds,
    then the charge into `book` (locked wallets, or the simulator's wallets in memory, which
    replays past usage through exactly these rules). Raises the domain error that refuses
    it, having changed nothing."""
    account, quantity, now = request.account, request.quantity, book.now
    account_id = account.pk  # a property lookup each time: read once (a hot path)
    t = resolve_terms(account, terms, request.feature)
    feature = t.feature
    credit_type = feature.credit_type
    credits = cost_of(quantity, t.credits_per_unit)
    counters.check(account_id, t, quantity)
    state = book.states.get((account_id, feature.credit_type_id))
    if state is None and credits > 0:
        raise InsufficientCredits.of(credit_type=credit_type.code, required=credits,
                                     available=ZERO)  # fmt: skip
    event = PendingUsageEvent(
        account=account,
        feature=feature,
        credit_type=credit_type,
        quantity=quantity,
        credits_per_unit=t.credits_per_unit,
        credits=credits,
        idempotency_key=request.idempotency_key,
        fingerprint=request.fingerprint if request.idempotency_key else "",
        metadata=request.metadata,
        occurred_at=request.occurred_at or now,
        created_at=now,
    )
    if state is not None:
        state.check_funds(credits, overdraft_limit=t.overdraft_limit)
        if credits > 0:
            state.charge(credits, overdraft_allowed=t.overdraft_limit > 0, usage_event=event)
        event.balance_after, event.available_after = state.wallet.balance, state.available
    else:
        event.balance_after = event.available_after = ZERO
    counters.add(account_id, t, quantity)
    book.new_usage_events.append(event)
    return event


# --- reservations -----------------------------------------------------------------------------


def reserve(*, account, feature, quantity, ttl_seconds=RESERVATION_TTL_DEFAULT,
            idempotency_key=None):  # fmt: skip
    """Hold the credits `quantity` units would cost, for `ttl_seconds`. Returns
    `(reservation, replayed)`."""
    quantity = parse_quantity(quantity)
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, int)
        or not (1 <= ttl_seconds <= RESERVATION_TTL_MAX)
    ):
        raise InvalidInput(
            f"ttl_seconds must be a whole number from 1 to {RESERVATION_TTL_MAX}.",
            details={"ttl_seconds": [f"1-{RESERVATION_TTL_MAX}"]},
        )
    _check_key(idempotency_key)
    fingerprint = _fingerprint(
        op="reserve", feature=feature, quantity=format_decimal(quantity), ttl=ttl_seconds
    )
    return retry_on_idempotency_race(
        lambda: _reserve(account, feature, quantity, ttl_seconds, idempotency_key, fingerprint)
    )


def _reserve(account, feature_code, quantity, ttl_seconds, idempotency_key, fingerprint):
    with transaction.atomic(durable=True):
        if idempotency_key:
            prior = Reservation.objects.filter(
                account=account, idempotency_key=idempotency_key
            ).first()
            if prior is not None:
                if prior.fingerprint != fingerprint:
                    raise IdempotencyKeyReused()
                return prior, True
        t = resolve_terms(account, feature_terms(account=account, feature_codes=[feature_code]),
                     feature_code)  # fmt: skip
        credits = cost_of(quantity, t.credits_per_unit)
        book = LedgerBook()
        key = (account.pk, t.credit_type_id)
        book.lock(keys=[key], create=True)
        Counters.load({account.pk: {feature_code: t}}, lock=False).check(account.pk, t, quantity)
        state = book.states[key]
        state.check_funds(credits, overdraft_limit=t.overdraft_limit)
        reservation = Reservation(
            account=account,
            wallet=state.wallet,
            feature=t.feature,
            quantity=quantity,
            credits_per_unit=t.credits_per_unit,
            credits_held=credits,
            expires_at=book.now + timedelta(seconds=ttl_seconds),
            idempotency_key=idempotency_key,
            fingerprint=fingerprint if idempotency_key else "",
            created_at=book.now,
        )
        book.new_reservations.append(reservation)
        state.hold(credits, reservation)
        book.flush()
        return reservation, False


def _locked_reservation(reservation_id, book):
    """The reservation, re-read after its wallet is locked (lock order: wallet first)."""
    found = Reservation.objects.select_related("wallet").filter(pk=reservation_id).first()
    if found is None:
        raise NotFound("No reservation has that id.")
    book.lock(keys=[(found.account_id, found.wallet.credit_type_id)])
    reservation = Reservation.objects.select_related(
        "feature", "account", "feature__credit_type"
    ).get(pk=reservation_id)
    if reservation.status != Reservation.Status.HELD or reservation.expires_at <= book.now:
        raise ReservationNotHeld(
            f"Reservation {reservation_id} is {_status_word(reservation, book.now)}."
        )
    return reservation, book.states[(found.account_id, found.wallet.credit_type_id)]


def _status_word(reservation, now):
    if reservation.status == Reservation.Status.HELD and reservation.expires_at <= now:
        return "past its expiry"
    return reservation.status


def commit_reservation(*, reservation_id, quantity, metadata=None):
    """Charge the actual cost and release the hold. Cost above the hold is charged only if
    available credits cover the excess; otherwise InsufficientCredits and the hold stays."""
    quantity = parse_quantity(quantity)
    metadata = _check_metadata(metadata)
    with transaction.atomic(durable=True):
        book = LedgerBook()
        reservation, state = _locked_reservation(reservation_id, book)
        account = reservation.account
        terms = feature_terms(account=account, feature_codes=[reservation.feature.code])
        t = terms.get(reservation.feature.code)
        overdraft = t.overdraft_limit if t else ZERO
        credits = cost_of(quantity, reservation.credits_per_unit)
        counters = Counters.load({account.pk: terms}, lock=True)
        if t is not None:
            counters.check(account.pk, t, quantity)
        state.check_funds(
            credits, overdraft_limit=overdraft, excluding_held=reservation.credits_held
        )
        state.release(reservation.credits_held, reservation, reason="committed")
        event = UsageEvent(
            account=account,
            feature=reservation.feature,
            credit_type=reservation.feature.credit_type,
            quantity=quantity,
            credits_per_unit=reservation.credits_per_unit,
            credits=credits,
            metadata=metadata,
            occurred_at=book.now,
            created_at=book.now,
        )
        if credits > 0:
            state.charge(credits, overdraft_allowed=overdraft > 0, usage_event=event,
                         reservation=reservation)  # fmt: skip
        event.balance_after, event.available_after = state.wallet.balance, state.available
        book.new_usage_events.append(event)
        if t is not None:
            counters.add(account.pk, t, quantity)
        reservation.status = Reservation.Status.COMMITTED
        reservation.usage_event = event
        reservation.closed_at = book.now
        book.dirty_reservations[reservation.pk] = reservation
        book.flush()
        counters.save()
        return reservation, event


def release_reservation(*, reservation_id):
    with transaction.atomic(durable=True):
        book = LedgerBook()
        reservation, state = _locked_reservation(reservation_id, book)
        state.release(reservation.credits_held, reservation, reason="released")
        reservation.status = Reservation.Status.RELEASED
        reservation.closed_at = book.now
        book.dirty_reservations[reservation.pk] = reservation
        book.flush()
        return reservation


def release_expired_reservations(*, now=None, chunk_size=1000, on_chunk=None, workers=None):
    """Release every hold past its TTL, a chunk of wallets per transaction. Returns
    JobCounts. Safe beside consumption and beside a second copy of itself."""
    now = now or clock.now()
    due = Reservation.objects.filter(status=Reservation.Status.HELD, expires_at__lte=now)
    failed = set()  # wallets that failed alone, for every worker

    def run(counts, on_chunk):
        sweep_wallets(due=due, work=lambda book: _release_due(book, due, now, counts),
                      counts=counts, now=now, chunk_size=chunk_size, on_chunk=on_chunk,
                      with_grants=False, failed=failed)  # fmt: skip

    return in_parallel(run, on_chunk=on_chunk, workers=workers)


def _release_due(book, due, now, counts):
    states = {state.wallet.pk: state for state in book.states.values()}
    # Re-read under the wallet locks: a commit or release may have closed some since.
    for reservation in due.filter(wallet_id__in=states):
        states[reservation.wallet_id].release(
            reservation.credits_held, reservation, reason="expired"
        )
        reservation.status = Reservation.Status.EXPIRED
        reservation.closed_at = now
        book.dirty_reservations[reservation.pk] = reservation
        counts.reservations_released += 1
