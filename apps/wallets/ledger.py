"""The ledger engine. Every write to a wallet goes through a `LedgerBook` inside one
transaction:

    book = LedgerBook(now=now)
    wallets = book.lock(keys=[(account_id, credit_type_id)], create=True)
    wallet = wallets[key]            # a WalletState: the locked row and its live grants
    wallet.charge(cost, ...)         # in memory: draws grants, appends ledger entries
    book.flush()                     # a constant number of bulk statements

Locking: wallets are locked in id order (`SELECT ... FOR UPDATE`) before their grants are
read, and grants are read in a statement of their own after the lock is held, so the values
they carry are the ones the previous lock holder committed. Every writer of grants holds the
wallet lock, which is why grants themselves need no row locks. On SQLite the IMMEDIATE
transaction already serialises writers.
"""

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, localcontext
from functools import lru_cache

from django.db import IntegrityError, connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

from apps.core import clock, events
from apps.core.allocation import released
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES
from apps.core.errors import InsufficientCredits, InvalidInput
from apps.jobs.runner import run_in_chunks

from . import bulk
from .bulk import PendingEntry
from .models import (
    CreditGrant,
    LedgerEntry,
    Reservation,
    Wallet,
    burn_down_key,
    burn_down_ordering,
)

ZERO = Decimal("0")
CREDIT_QUANTUM = Decimal("0.000001")
CREDITS_LIMIT = Decimal(10) ** (CREDIT_DIGITS - CREDIT_PLACES)
Kind = LedgerEntry.Kind


@lru_cache(maxsize=4096)  # the same few (quantity, price) pairs, a million times a replay
def cost_of(quantity, credits_per_unit):
    """quantity × price, exactly: it must fit 6 decimal places and a credit column, else
    InvalidInput; never rounded. Multiplied with enough digits for any two credit values (the
    default 28-digit context would round large products before the check). Equal decimals
    give equal results whatever their exponent, so the cache cannot change an answer; an
    InvalidInput is raised each time, never cached."""
    with localcontext(prec=2 * CREDIT_DIGITS + 2):
        value = quantity * credits_per_unit
        exact = value.quantize(CREDIT_QUANTUM)
    if value != exact:
        raise InvalidInput(
            f"credits come to {value}, which has more than 6 decimal places.",
            details={"quantity": [f"credits would be {value}: more than 6 decimal places."]},
        )
    if exact >= CREDITS_LIMIT:
        raise InvalidInput(
            f"credits come to {exact}, more than a wallet can hold.",
            details={"quantity": [f"credits would be {exact}: at most {CREDITS_LIMIT} - 1."]},
        )
    return exact


# Unique constraints that make a repeat of a request a replay (UsageEvent, Reservation,
# CreditGrant): losing a race on one of them means a concurrent repeat committed first.
IDEMPOTENCY_CONSTRAINTS = {
    "usage_event_idempotency_key_unique",
    "reservation_idempotency_key_unique",
    "grant_reference_unique_per_account",
}


def retry_on_idempotency_race(attempt):
    """Run `attempt()`; if it lost a race on an idempotency constraint, run it once more:
    that pass finds the winner's row and replays it. Any other IntegrityError is a bug."""
    try:
        return attempt()
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        if diag is not None:  # PostgreSQL names the constraint
            lost_race = diag.constraint_name in IDEMPOTENCY_CONSTRAINTS
        else:  # SQLite names the columns: "UNIQUE constraint failed: t.account_id, t.reference"
            lost_race = "idempotency_key" in str(error) or ".reference" in str(error)
        if not lost_race:
            raise
    return attempt()


@dataclass
class Draw:
    grant: CreditGrant | None  # None: overage (no grant funds it)
    credits: Decimal


@dataclass
class WalletState:
    """A locked wallet and its grants with credits left, in burn-down order."""

    book: "LedgerBook"
    wallet: Wallet
    grants: list = field(default_factory=list)

    @property
    def available(self):
        return self.wallet.balance - self.wallet.held

    def expire_due(self, *, until=None):
        """Close grants past their expiry (up to `until`, by default now) that no job has
        reached yet, oldest expiry first, so that the balance this transaction works with
        holds only spendable credits. A rollover this makes may itself be past due (a renewal
        catching up): the loop closes it too."""
        until = until or self.book.now
        while due := [g for g in self.grants if g.past_due(until)]:
            self.close(min(due, key=expiry_order))

    def close(self, grant):
        """End a grant: roll over what its plan's terms carry (`rollover_amount`) into a new
        `rollover` grant and expire the rest (breakage)."""
        carried = rollover_amount(grant)
        if grant.remaining > carried:
            self._take(grant, grant.remaining - carried, kind=Kind.EXPIRE, reason="expired")
        if carried > 0:
            self._take(grant, carried, kind=Kind.ROLLOVER, reason="rolled over")
            self.add_grant(
                CreditGrant(
                    source=CreditGrant.Source.ROLLOVER,
                    amount=carried,
                    priority=grant.priority,
                    effective_at=min(grant.expires_at or self.book.now, self.book.now),
                    expires_at=grant.rollover_expires_at,
                    unit_price=grant.unit_price,
                    # Rolled credits carry what is left of their basis: the rollover is
                    # the last move of the closed grant, so that is all it has not released.
                    basis_amount=grant.basis_amount
                    - released(
                        grant.basis_amount,
                        grant.amount,
                        grant.amount - carried,
                        currency=grant.currency,
                    ),
                    currency=grant.currency,
                    plan_id=grant.plan_id,
                    reference=f"{grant.reference}:rollover" if grant.reference else None,
                    reason=f"Rolled over from grant #{grant.pk}" if grant.pk else "Rolled over",
                    created_at=self.book.now,
                ),
                kind=Kind.ROLLOVER,
            )
        self.grants = [g for g in self.grants if g.remaining > 0]

    def check_funds(self, credits, *, overdraft_limit, excluding_held=ZERO):
        """Raise unless `credits` fit in available (+ overdraft); `excluding_held` is a hold
        the caller is about to release."""
        available = self.available + excluding_held
        if credits > available + overdraft_limit:
            raise InsufficientCredits.of(
                credit_type=self.wallet.credit_type.code, required=credits, available=available
            )

    def charge(self, credits, *, kind=Kind.CONSUME, overdraft_allowed=False, **links):
        """Draw `credits` from grants in burn-down order; what grants cannot cover becomes
        debt (an `overage` entry) when the caller allows it. Funds must have been checked."""
        draws, left = [], credits
        for grant in self.grants:
            if left == 0:
                break
            take = min(grant.remaining, left)
            self._take(grant, take, kind=kind, **links)
            draws.append(Draw(grant, take))
            left -= take
        self.grants = [g for g in self.grants if g.remaining > 0]
        if left > 0:
            if not overdraft_allowed:  # the caller's funds check makes this unreachable
                raise AssertionError("charge beyond grants without overdraft")
            self.wallet.debt += left
            self.wallet.balance -= left
            self.book.entry(self, kind=Kind.OVERAGE, amount=-left, **links)
            draws.append(Draw(None, left))
        return draws

    def add_grant(self, grant, *, kind=Kind.GRANT, **links):
        """A new grant pays back debt first (docs/ledger.md, "Rules")."""
        grant.wallet = self.wallet
        grant.account_id = self.wallet.account_id
        settled = min(self.wallet.debt, grant.amount)
        grant.debt_settled = settled
        grant.remaining = grant.amount - settled
        self.wallet.debt -= settled
        self.wallet.balance += grant.amount
        self.book.new_grants.append(grant)
        self.book.entry(self, kind=kind, amount=grant.amount, grant=grant, **links)
        if grant.remaining > 0:  # already past due (a renewal catching up): expire_due closes it
            self.grants.append(grant)
            self.grants.sort(key=burn_down_key)
        return grant

    def void(self, grant, **links):
        self._take(grant, grant.remaining, kind=Kind.VOID, **links)
        grant.voided_at = self.book.now
        self.book.dirty_grants[id(grant)] = grant
        self.grants = [g for g in self.grants if g.remaining > 0]

    def claw_back(self, grant, credits, **links):
        """Part of a grant taken back (a partial refund): a `void` entry for that part."""
        if credits == grant.remaining:
            return self.void(grant, **links)
        self._take(grant, credits, kind=Kind.VOID, **links)

    def hold(self, credits, reservation):
        self.wallet.held += credits
        self.book.entry(self, kind=Kind.RESERVE, amount=ZERO, held_change=credits,
                        reservation=reservation)  # fmt: skip

    def release(self, credits, reservation, *, reason=""):
        self.wallet.held -= credits
        self.book.entry(self, kind=Kind.RELEASE, amount=ZERO, held_change=-credits,
                        reservation=reservation, reason=reason)  # fmt: skip

    def _take(self, grant, credits, *, kind, **links):
        grant.remaining -= credits
        self.wallet.balance -= credits
        self.book.dirty_grants[id(grant)] = grant
        self.book.entry(self, kind=kind, amount=-credits, grant=grant, **links)


def rollover_amount(grant):
    """min(remaining × percent, cap), rounded down to the credit's 6 places: never more than
    the terms allow."""
    if not grant.rollover_percent or grant.remaining <= 0:
        return ZERO
    with localcontext(prec=2 * CREDIT_DIGITS + 2):
        carried = (grant.remaining * grant.rollover_percent / 100).quantize(
            CREDIT_QUANTUM, rounding=ROUND_DOWN
        )
    if grant.rollover_cap is not None:
        carried = min(carried, grant.rollover_cap)
    return min(carried, grant.remaining)


def expiry_order(grant):
    return (grant.expires_at, grant.pk is None, grant.pk or 0)


class LedgerBook:
    """Collects the writes of one transaction and flushes them in a few bulk statements."""

    def __init__(self, *, now=None):
        self.now = now or clock.now()
        self.states = {}
        self.entries = []
        self.new_grants = []
        self.dirty_grants = {}
        self.new_usage_events = []
        self.new_reservations = []
        self.dirty_reservations = {}
        self.touched = {}
        self.created_wallet_ids = set()
        self.after_flush = []  # callbacks run after the writes, in the same transaction

    # --- reading under lock ---------------------------------------------------------------

    def lock(self, *, keys=(), wallet_ids=(), create=False, with_grants=True, expire=True,
             skip_locked=False):  # fmt: skip
        """Lock the wallets for `(account_id, credit_type_id)` keys (or by `wallet_ids`) in id
        order, and load their grants with credits left, closing those past expiry unless
        `expire` is False. Missing wallets are created when `create` is True (or, when it is a
        set of keys, for those keys), else left out. All in one locking statement: two calls
        would not lock in one id order, and could deadlock against a job. `skip_locked`: a
        job's claim, which leaves wallets another transaction holds to that one."""
        keys = sorted(set(keys) - set(self.states))
        if not keys and not wallet_ids:
            return self.states
        to_create = keys if create is True else sorted(set(create or ()) & set(keys))
        if to_create:
            self.created_wallet_ids |= bulk.create_wallets(to_create, now=self.now)
        if wallet_ids:
            match = Q(pk__in=sorted(wallet_ids))
        elif len(keys) > 1 and connection.vendor == "postgresql":
            # A job's chunk: one join on two arrays, not an OR of a thousand pairs to plan.
            match = Q(pk__in=RawSQL(
                "SELECT w.id FROM wallets_wallet w JOIN unnest(%s::bigint[], %s::bigint[]) "
                "AS k(a, c) ON w.account_id = k.a AND w.credit_type_id = k.c",
                [[a for a, _ in keys], [c for _, c in keys]],
            ))  # fmt: skip
        else:
            match = Q()
            for account_id, credit_type_id in keys:
                match |= Q(account_id=account_id, credit_type_id=credit_type_id)
        # Why the lock: it serialises every writer of this wallet's balance and grants.
        wallets = list(
            Wallet.objects.filter(match)
            .select_related("credit_type")
            .order_by("pk")
            .select_for_update(of=("self",), skip_locked=skip_locked)
        )
        fresh = {}
        for wallet in wallets:
            if (wallet.account_id, wallet.credit_type_id) in self.states:
                continue
            state = WalletState(book=self, wallet=wallet)
            self.states[(wallet.account_id, wallet.credit_type_id)] = state
            fresh[wallet.pk] = state
        if with_grants and fresh:
            # A statement of its own, after the lock: it sees what the last holder committed.
            for grant in CreditGrant.objects.filter(wallet_id__in=fresh, remaining__gt=0).order_by(
                "wallet_id", *burn_down_ordering()
            ):
                state = fresh[grant.wallet_id]
                grant.wallet = state.wallet
                state.grants.append(grant)
            if expire:
                for state in fresh.values():
                    state.expire_due()
        return self.states

    # --- writing --------------------------------------------------------------------------

    def entry(self, state, *, kind, amount, held_change=ZERO, **links):
        self.touched[state.wallet.pk] = state.wallet
        self.entries.append(
            PendingEntry(
                account_id=state.wallet.account_id,
                wallet=state.wallet,
                kind=kind,
                amount=amount,
                balance_after=state.wallet.balance,
                held_change=held_change,
                created_at=self.now,
                **links,
            )
        )

    def flush(self):
        """Write everything collected: at most one statement per table and kind of write."""
        if self.new_grants:
            bulk.insert_grants(self.new_grants, now=self.now)
        if self.new_usage_events:
            bulk.insert_usage_events(self.new_usage_events)
        if self.new_reservations:
            Reservation.objects.bulk_create(self.new_reservations)
        if self.entries:
            bulk.insert_ledger_entries(self.entries)
        new_grant_ids = {id(g) for g in self.new_grants}
        dirty = [g for key, g in self.dirty_grants.items() if key not in new_grant_ids]
        if dirty:
            bulk.update_grants(dirty)
        if self.dirty_reservations:
            Reservation.objects.bulk_update(
                list(self.dirty_reservations.values()), ["status", "usage_event", "closed_at"]
            )
        wallets = list(self.touched.values())
        for wallet in wallets:
            wallet.updated_at = self.now
        if wallets:
            bulk.update_wallets(wallets)
        self.drop_unused_wallets()
        expired = [e for e in self.entries if e.kind == Kind.EXPIRE]
        if self.new_grants or expired:
            events.publish(
                events.LEDGER_FLUSHED,
                new_grants=self.new_grants,
                expire_entries=expired,
                now=self.now,
            )
        for callback in self.after_flush:
            callback()
        self.after_flush = []
        self.entries, self.new_grants, self.dirty_grants = [], [], {}
        self.new_usage_events, self.new_reservations, self.dirty_reservations = [], [], {}
        self.touched = {}

    def drop_unused_wallets(self):
        """Delete wallets this transaction created but never wrote to (an overdraft plan's
        consume that failed): a failed request leaves nothing behind."""
        unused = self.created_wallet_ids - {w.pk for w in self.touched.values()}
        if unused:
            bulk.delete_wallets(unused)
        self.created_wallet_ids = set()


def sweep_wallets(*, due, work, counts, now, chunk_size, on_chunk=None, with_grants=True,
                  failed=None):  # fmt: skip
    """Run `work(book)` over every wallet that `due` (a queryset of rows with a wallet_id)
    names, a chunk of wallets per durable transaction, in wallet id order, by the chunk
    runner (apps/jobs/runner.py: SKIP LOCKED, then a pass that waits, then one wallet at a
    time for a chunk that failed, `failed` keeping the wallets that fail alone): the
    statements per chunk do not grow with its size. Locking closes grants past expiry
    (`with_grants`)."""

    def lock(wallet_ids, *, skip_locked):
        book = LedgerBook(now=now)
        book.lock(wallet_ids=wallet_ids, with_grants=with_grants, skip_locked=skip_locked)
        return book

    def write(book):
        work(book)
        counts.tally(book.entries)
        book.flush()

    run_in_chunks(due=due, lock=lock, work=write, counts=counts, chunk_size=chunk_size,
                  on_chunk=on_chunk, failed=failed, key="wallet_id", label="wallet")  # fmt: skip
