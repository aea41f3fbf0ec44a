"""The replay: accounts' real usage over a past range, through consume's own rules
(`apps.usage.services.charge_request`) and the renewal's (`apps.periods.services`), on
wallets held in memory by a `LedgerBook` that is never flushed. Run inside
`sandbox.draft_catalog`, every term it reads is the draft's; the real side of the
comparison is tallied from the ledger by the same `figures.Tally`.

What is replayed, per account and in time order, from where its wallets stood at the range
start (grants past due included, and debt: the engine closes them as a consume would):
- each usage event, as a consume of its feature and quantity at its moment;
- the grants that were not the renewal's (purchases, promotions, staff grants, trials),
  voids and staff corrections, as they happened;
- each period boundary of its subscription (the calendar of its billing anchor): the ended
  period's grants closed (rollover by their terms), its overage billed and the next period
  granted, by the draft's terms;
- expiry at each grant's expiry moment.
What is not: holds (a reservation's commit is replayed as its usage event), and requests
that were refused in reality (they are not stored). Terms are the draft's as they stand
for the whole range, subscriptions as they stand (a plan change within the range is not
replayed), and a renewal happens at its boundary (the job runs within a minute of it).
"""

import copy
import multiprocessing
from collections import defaultdict, namedtuple
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.db import connections
from django.db.models import Count, Q, Sum

from apps.accounts.models import Account, Subscription
from apps.catalog.models import CreditType, Feature
from apps.core.errors import DomainError, InsufficientCredits, InvalidInput
from apps.core.rows import fetch_rows
from apps.periods.calendar import boundary, index_of, period_end_after
from apps.periods.services import (
    PeriodPricing,
    period_grants,
    period_reference,
    settle_overage,
)
from apps.usage.entitlement import Counters, usable
from apps.usage.models import UsageCounter, UsageEvent
from apps.usage.selectors import terms_for
from apps.usage.services import ConsumeRequest, charge_request
from apps.wallets.ledger import LedgerBook, WalletState
from apps.wallets.models import CreditGrant, LedgerEntry, Wallet
from apps.wallets.selectors import wallets_at

from .figures import Tally
from .sandbox import draft_catalog

ZERO = Decimal(0)
MICROSECOND = timedelta(microseconds=1)
Kind = LedgerEntry.Kind
# Grants the replay makes itself, by the draft's terms: the periods, their overage bills and
# the rollovers that closing a grant makes. Every other grant is replayed as it happened.
REPLAYED_BY_RULES = (
    CreditGrant.Source.PLAN_PERIOD,
    CreditGrant.Source.OVERAGE,
    CreditGrant.Source.ROLLOVER,
)
# At one moment: a renewal, then grants, then corrections, then usage.
BOUNDARY, GRANT, VOID, ADJUST, USAGE = range(5)


@dataclass
class AccountResult:
    account_id: int
    real: object  # Figures
    draft: object  # Figures


class _Counters(Counters):
    """Quota counters in memory: a period's row appears, at zero, when first used."""

    class Rows(dict):
        def __missing__(self, key):
            account_id, feature_id, period_start = key
            row = UsageCounter(account_id=account_id, feature_id=feature_id,
                               period_start=period_start)  # fmt: skip
            self[key] = row
            return row

    def __init__(self):
        super().__init__(self.Rows())


# A real ledger move the replay repeats: a grant, a void or a staff correction.
Move = namedtuple("Move", "pk wallet__credit_type_id kind amount grant_id created_at")
REPEATED_KINDS = (Kind.GRANT, Kind.ADJUST, Kind.VOID)


def replay_chunk(*, account_ids, start, end):
    """`AccountResult` per account of `account_ids`, for usage in [start, end)."""
    accounts = Account.objects.in_bulk(account_ids)
    start_state = wallets_at(account_ids=account_ids, at=start - MICROSECOND, with_past_due=True)
    in_range = {"account_id__in": account_ids, "created_at__gte": start, "created_at__lt": end}
    features = {f.pk: f.code for f in Feature.objects.all()}
    usage = defaultdict(list)
    for row in fetch_rows(
        UsageEvent.objects.filter(**in_range)
        .order_by("account_id", "created_at", "pk")
        .values_list("account_id", "created_at", "pk", "feature_id", "quantity")
    ):
        usage[row[0]].append(row)
    moves = defaultdict(list)
    for row in (
        LedgerEntry.objects.filter(kind__in=REPEATED_KINDS, **in_range)
        .order_by("pk")
        .values_list("account_id", *Move._fields)
    ):
        moves[row[0]].append(Move(*row[1:]))
    real = _RealLedger(in_range, start_state)
    grants = _grants_of(start_state, real, moves)
    subscriptions = _subscriptions(account_ids, start, end)
    pricing = PeriodPricing(
        {s.plan_id for subs in subscriptions.values() for s in subs}, set(account_ids)
    )
    codes = {(a, features[row[3]]) for a, rows in usage.items() for row in rows}
    terms = defaultdict(dict)
    for (account_id, code), t in terms_for(pairs=codes).items():
        terms[account_id][code] = t
    used = _used_at_start(terms, subscriptions, start)

    wallets, used_by_account = defaultdict(list), defaultdict(dict)
    for w in start_state.values():
        wallets[w.account_id].append(w)
    for key, value in used.items():
        used_by_account[key[0]][key] = value
    results = []
    for account_id in account_ids:
        draft = _Replay(
            account=_active(accounts[account_id]),
            wallets=wallets[account_id],
            terms=terms[account_id],
            subscriptions=subscriptions.get(account_id, []),
            pricing=pricing,
            used=used_by_account[account_id],
            start=start,
        ).run(usage[account_id], moves[account_id], grants, features, end)
        results.append(
            AccountResult(account_id=account_id, real=real.figures(account_id, grants), draft=draft)
        )
    return results


class _RealLedger:
    """What the ledger says the range did: its moves summed in SQL by account, grant, kind
    and sign (all the tally needs), and the usage events counted."""

    def __init__(self, in_range, start_state):
        self.usage = {
            row["account_id"]: row
            for row in UsageEvent.objects.filter(**in_range)
            .values("account_id")
            .annotate(events=Count("pk"), credits=Sum("credits"))
            .order_by()
        }
        self.moved = defaultdict(list)
        for row in (
            LedgerEntry.objects.filter(**in_range)
            .exclude(kind__in=(Kind.RESERVE, Kind.RELEASE))
            .values("account_id", "grant_id", "kind")
            .annotate(gained=Sum("amount", filter=Q(amount__gt=0)),
                      lost=Sum("amount", filter=Q(amount__lt=0)))
            .order_by()
        ):  # fmt: skip
            self.moved[row["account_id"]].append(row)
        self.grant_ids = {row["grant_id"] for rows in self.moved.values() for row in rows}
        self.starting = defaultdict(list)
        for w in start_state.values():
            self.starting[w.account_id] += w.grants

    def figures(self, account_id, grants):
        tally = Tally(key=lambda g: g.pk)
        tally.starting(self.starting[account_id])
        if account_id in self.usage:
            tally.figures.events = self.usage[account_id]["events"]
            tally.figures.charged = self.usage[account_id]["credits"]
        for row in self.moved[account_id]:
            for amount in (row["gained"], row["lost"]):
                if amount:
                    tally.entry(row["kind"], amount, grants.get(row["grant_id"]))
        return tally.close()


def _grants_of(start_state, real, moves):
    """Every grant the range's entries name, by id: the start state's and those granted
    within the range."""
    found = {g.pk: g for w in start_state.values() for g in w.grants}
    named = real.grant_ids | {m.grant_id for rows in moves.values() for m in rows}
    missing = named - set(found) - {None}
    found.update(CreditGrant.objects.select_related("wallet__credit_type").in_bulk(missing))
    return found


def _subscriptions(account_ids, start, end):
    """The subscriptions with a period in [start, end), with their plans, by account."""
    found = defaultdict(list)
    for s in (
        Subscription.objects.filter(
            account_id__in=account_ids, current_period_end__gt=start, created_at__lt=end
        )
        .select_related("plan")
        .order_by("pk")
    ):
        found[s.account_id].append(s)
    return found


def boundaries(subscription, start, end):
    """The period starts of `subscription` in [start, end): its calendar's boundaries from
    its billing anchor up to its current period's start."""
    anchor, interval = subscription.billing_anchor, subscription.plan.billing_interval
    index = index_of(anchor=anchor, interval=interval, moment=start)
    found = []
    while True:
        moment = boundary(anchor=anchor, interval=interval, index=index)
        if moment >= end or moment > subscription.current_period_start:
            return found
        found.append(moment)
        index += 1


def period_start_at(subscription, moment):
    """The start of the subscription's period holding `moment` (quotas count from there):
    the calendar's boundary at or before it; before the anchor (a trial), the trial's start."""
    anchor, interval = subscription.billing_anchor, subscription.plan.billing_interval
    if moment < anchor:
        trialing = subscription.current_period_end <= anchor
        return subscription.current_period_start if trialing else None
    return period_end_after(anchor=anchor, interval=interval, moment=moment, periods=0)


def _live_at(subscriptions, moment):
    """The subscription in force at `moment`, if any."""
    for s in subscriptions:
        if min(s.billing_anchor, s.current_period_start) <= moment < s.current_period_end:
            return s
    return None


def _used_at_start(terms, subscriptions, start):
    """Quota counters as they stood at the range start: the units used in the period that
    held it, before it. `{(account_id, feature_id, period_start): used}`."""
    match, starts = Q(), {}
    for account_id, by_code in terms.items():
        subscription = _live_at(subscriptions.get(account_id, []), start)
        period = period_start_at(subscription, start) if subscription else None
        features = [t.feature.pk for t in by_code.values() if t.limit_per_period is not None]
        if period is None or not features:
            continue
        starts[account_id] = period
        match |= Q(account_id=account_id, feature_id__in=features, created_at__gte=period)
    if not match:
        return {}
    rows = (
        UsageEvent.objects.filter(match, created_at__lt=start)
        .values("account_id", "feature_id")
        .annotate(used=Sum("quantity"))
        .order_by()
    )
    return {(r["account_id"], r["feature_id"], starts[r["account_id"]]): r["used"] for r in rows}


class _Replay:
    def __init__(self, *, account, wallets, terms, subscriptions, pricing, used, start):
        self.account = account
        self.book = LedgerBook(now=start)
        self.tally = Tally()
        self.copies = {}  # real grant id -> the replay's grant
        for w in wallets:
            wallet = Wallet(pk=w.wallet_id, account_id=account.pk, credit_type_id=w.credit_type_id,
                            balance=w.balance, held=ZERO, debt=w.debt)  # fmt: skip
            wallet.credit_type = _credit_type(w)
            grants = [copy.copy(g) for g in w.grants]
            for real, replayed in zip(w.grants, grants, strict=True):
                replayed.wallet = wallet
                self.copies[real.pk] = replayed
            self.book.states[(account.pk, w.credit_type_id)] = WalletState(
                book=self.book, wallet=wallet, grants=grants
            )
            self.tally.starting(grants)
        self.terms = terms
        self.subscriptions = subscriptions
        self.pricing = pricing
        self.counters = _Counters()
        self._requests = {}
        for key, value in used.items():
            self.counters.rows[key].used = value
        subscription = _live_at(subscriptions, start)
        self.period_start = period_start_at(subscription, start) if subscription else None
        self._terms_now = self._terms_for_period()

    def _terms_for_period(self):
        terms = {code: replace(t, period_start=self.period_start) for code, t in self.terms.items()}
        for t in terms.values():
            if usable(self.account, t) and t.overdraft_limit > 0:
                # As consume creates the wallet it may overdraw (an empty one changes nothing).
                self._state(t.credit_type_id, t.feature.credit_type)
        return terms

    def run(self, usage, entries, grants, features, end):
        start = self.book.now
        moments = [(at, BOUNDARY, 0, (s, at)) for s in self.subscriptions
                   for at in boundaries(s, start, end)]  # fmt: skip
        moments += self._renewed_late(entries, grants, start)
        adjustments = defaultdict(Decimal)
        for entry in entries:
            grant = grants.get(entry.grant_id)
            if entry.amount > 0 and grant is not None and grant.source not in REPLAYED_BY_RULES:
                if entry.kind in (Kind.GRANT, Kind.ADJUST):
                    moments.append((entry.created_at, GRANT, entry.pk, (entry.kind, grant)))
            elif entry.kind == Kind.VOID:
                moments.append((entry.created_at, VOID, entry.pk, (grant, -entry.amount)))
            elif entry.kind == Kind.ADJUST and entry.amount < 0:
                adjustments[(entry.created_at, entry.wallet__credit_type_id)] -= entry.amount
        for (at, credit_type_id), credits in adjustments.items():
            moments.append((at, ADJUST, 0, (credit_type_id, credits)))
        moments += [(row[1], USAGE, row[2], row) for row in usage]
        moments.sort(key=lambda m: m[:3])
        self._next_expiry()
        for at, what, _, item in moments:
            self.book.now = at
            self._expire(at)
            if what == USAGE:
                self._use(item, features)
                continue
            if what == BOUNDARY:
                self._renew(*item)
            elif what == GRANT:
                self._grant(*item)
            elif what == VOID:
                self._void(*item)
            else:
                self._adjust(*item)
            self._next_expiry()
        # What expires at the end itself is the next range's: its entries are written then.
        self.book.now = end - MICROSECOND
        self._expire(self.book.now)
        for entry in self.book.entries:
            self.tally.entry(entry.kind, entry.amount, entry.grant)
        for event in self.book.new_usage_events:
            self.tally.usage(event.credits)
        return self.tally.close()

    def _renewed_late(self, entries, grants, start):
        """Periods due before the range that the renewal job reached only within it (the
        real ledger's period grants say so): the replay renews them as the range starts."""
        late = {}
        for entry in entries:
            grant = grants.get(entry.grant_id)
            if (
                entry.amount > 0
                and grant is not None
                and grant.source == CreditGrant.Source.PLAN_PERIOD
                and grant.effective_at < start
            ):
                code = grant.wallet.credit_type.code
                for s in self.subscriptions:
                    if grant.reference == period_reference(s.pk, grant.effective_at, code):
                        late[(s.pk, grant.effective_at)] = (start, BOUNDARY, 0,
                                                            (s, grant.effective_at))  # fmt: skip
        return list(late.values())

    def _expire(self, at):
        # As the expiry job and every consume's lock do: nothing past due is spent.
        if self._due_from is None or at < self._due_from:
            return  # nothing expires yet: skip the look at every grant (a hot path)
        for state in self.book.states.values():
            state.expire_due(until=at)
        self._next_expiry()

    def _next_expiry(self):
        """When the first grant expires, after a change to the grants."""
        self._due_from = min(
            (g.expires_at for s in self.book.states.values() for g in s.grants if g.expires_at),
            default=None,
        )

    def _state(self, credit_type_id, credit_type=None):
        key = (self.account.pk, credit_type_id)
        state = self.book.states.get(key)
        if state is None:
            wallet = Wallet(account_id=self.account.pk, credit_type_id=credit_type_id,
                            balance=ZERO, held=ZERO, debt=ZERO)  # fmt: skip
            wallet.credit_type = credit_type
            state = self.book.states[key] = WalletState(book=self.book, wallet=wallet)
        return state

    def _use(self, row, features):
        _, at, _, feature_id, quantity = row
        # One request per feature and quantity: the event's moment is the book's (a hot path).
        request = self._requests.get((feature_id, quantity))
        if request is None:
            request = self._requests[(feature_id, quantity)] = ConsumeRequest(
                account=self.account, feature=features[feature_id], quantity=quantity
            )
        try:
            charge_request(request, self._terms_now, self.book, self.counters)
        except DomainError as error:
            # As the API would answer (apps/api/errors.py): credits, the input, the terms.
            status = (402 if isinstance(error, InsufficientCredits)
                      else 400 if isinstance(error, InvalidInput) else 403)  # fmt: skip
            self.tally.figures.refused(status=status, at=at)

    def _renew(self, subscription, at):
        """The renewal of the period starting at `at`, by the renewal's own rules."""
        plan = subscription.plan
        if at > subscription.billing_anchor:
            ended = self.pricing.ended(subscription, plan, at)
            # Only the wallets the renewal locks: its plans' and contract's credit types.
            keys = self.pricing.wallet_keys(self.account.pk, [plan.pk])
            for key, state in list(self.book.states.items()):
                if key in keys:
                    settle_overage(subscription, ended, state, at, set())
        following = period_end_after(
            anchor=subscription.billing_anchor, interval=plan.billing_interval, moment=at
        )
        terms = self.pricing.terms(subscription, plan, at)
        grants, _fee = period_grants(subscription, terms, at, following, self.book.now)
        # A contract may include credits of a type its plan does not: from the same terms.
        credit_types = {a.credit_type_id: a.credit_type for a in terms.allowances}
        for credit_type_id, grant in grants:
            state = self._state(credit_type_id, credit_types[credit_type_id])
            state.add_grant(grant, reason=grant.reason)
        self.period_start = at
        self._terms_now = self._terms_for_period()

    def _grant(self, kind, real):
        grant = copy.copy(real)
        grant.pk = grant.voided_at = None
        grant.debt_settled = ZERO
        self.copies[real.pk] = grant
        state = self._state(real.wallet.credit_type_id, real.wallet.credit_type)
        state.add_grant(grant, kind=kind, reason=real.reason)

    def _void(self, real, credits):
        grant = self.copies.get(real.pk) if real is not None else None
        if grant is None or grant.remaining <= 0:
            return
        state = self.book.states[(self.account.pk, grant.wallet.credit_type_id)]
        state.claw_back(grant, min(credits, grant.remaining))

    def _adjust(self, credit_type_id, credits):
        """A staff debit: what is there of it (adjust never overdraws), in burn-down order."""
        state = self.book.states.get((self.account.pk, credit_type_id))
        if state is None:
            return
        taken = min(credits, max(state.available, ZERO))
        if taken > 0:
            state.charge(taken, kind=Kind.ADJUST)


def _active(account):
    """The account as its stored usage proves it was: active (its status now, suspended or
    not, is not what it was then)."""
    replayed = copy.copy(account)
    replayed.status = Account.Status.ACTIVE
    return replayed


def _credit_type(w):
    return CreditType(pk=w.credit_type_id, code=w.credit_type_code)


def simulate_chunks(*, raw, account_ids, start, end, contracts=None, chunk_size=1000,
                    workers=1):  # fmt: skip
    """`AccountResult`s a chunk of accounts at a time, in order, under the draft catalog file
    `raw` (None: the live catalog as it is) and the draft `contracts` (`{account id: body}`,
    `live_from` the range's start). Each chunk has a sandbox of its own, rolled back before
    its results are handed out: the caller may write between chunks (progress,
    the results) on the same connection, no lock on the catalog outlives a chunk, and on
    SQLite live writers wait for one chunk at most, not for the whole run. The range is in
    the past, so every chunk reads the same history. `workers` > 1: chunks replayed by that
    many processes at once, each on a connection of its own (PostgreSQL; not from a
    daemonic process such as a Celery worker's child, which may not fork)."""
    chunks = [account_ids[i : i + chunk_size] for i in range(0, len(account_ids), chunk_size)]
    contracts = live_from(contracts, start)
    replay = partial(_replay_in_sandbox, raw=raw, contracts=contracts, start=start, end=end)
    if workers <= 1 or len(chunks) <= 1 or multiprocessing.current_process().daemon:
        for chunk in chunks:
            yield replay(chunk)
        return
    connections.close_all()  # a forked process must not share this process's connections
    with multiprocessing.get_context("fork").Pool(min(workers, len(chunks))) as pool:
        yield from pool.imap(replay, chunks)


def live_from(contracts, start):
    """Draft contracts (`{account id: body}`) live over the whole range unless they say
    otherwise: a draft is a question about the past, not a contract signed today."""
    return {pk: {"starts_at": start.isoformat(), **body} for pk, body in (contracts or {}).items()}


def _replay_in_sandbox(account_ids, *, raw, contracts, start, end):
    with draft_catalog(raw=raw, contracts=contracts):
        return replay_chunk(account_ids=account_ids, start=start, end=end)


def simulate(**kwargs):
    """`AccountResult` per account: `simulate_chunks`, one account at a time."""
    for results in simulate_chunks(**kwargs):
        yield from results
