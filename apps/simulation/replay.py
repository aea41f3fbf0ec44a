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
- each period of its subscriptions (the calendar of the billing anchor), renewed at the
  moment the renewal really ran (`renew_period`, the renewal job's own step): the ended
  period's grants closed (rollover by their terms), its overage billed and the next period
  granted, by the draft's terms; a trial's credits by the draft's plan;
- a subscription's end where it really ended (cut short, or later when it was past due): an
  overdue period caught up first, then its period's and trial's credits closed (rolled over
  on a switch to another plan, not on a cancellation); cancel at period end set or cleared
  where its history says;
- the terms as they stood at each moment (apps/simulation/history.py): a subscription's
  start and end, a trial's conversion, a contract's start and end switch them;
- expiry at each grant's expiry moment.
What is not: holds (a reservation's commit is replayed as its usage event), requests that
were refused in reality (they are not stored), and a plan change within one subscription
(a change at period end or to another version: the subscription is replayed on its plan).
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

from apps.accounts.models import Account
from apps.catalog.models import CreditType, Feature
from apps.core.errors import DomainError, InsufficientCredits, InvalidInput
from apps.core.rows import fetch_rows
from apps.periods.calendar import period_end_after
from apps.periods.services import (
    PeriodPricing,
    carry_rollover_terms,
    period_grants,
    renew_period,
    subscription_grants,
    subscription_of,
    trial_grants,
)
from apps.usage.entitlement import Counters, usable
from apps.usage.models import UsageCounter, UsageEvent
from apps.usage.services import ConsumeRequest, charge_request
from apps.wallets.ledger import LedgerBook, WalletState
from apps.wallets.models import CreditGrant, LedgerEntry, Wallet
from apps.wallets.selectors import wallets_at

from .figures import Tally
from .history import live_at, period_start_at, subscriptions_in, terms_over_range, used_at_start
from .sandbox import draft_catalog

ZERO = Decimal(0)
MICROSECOND = timedelta(microseconds=1)
Kind = LedgerEntry.Kind
Source = CreditGrant.Source
# Grants the replay makes itself, by the draft's terms: the periods, their overage bills and
# the rollovers that closing a grant makes. Every other grant is replayed as it happened.
REPLAYED_BY_RULES = (
    Source.PLAN_PERIOD,
    Source.OVERAGE,
    Source.ROLLOVER,
)
# At one moment, in the order the services take them: a subscription's overdue period renewed
# before it ends (their catch-up), its end, the terms that follow, a renewal (the next
# subscription's first period), cancel at period end set or cleared, then grants, then
# corrections, then usage.
CATCH_UP, CLOSE, TERMS, BOUNDARY, FLAG, GRANT, VOID, ADJUST, USAGE = range(9)


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
    subscriptions = subscriptions_in(account_ids=account_ids, start=start, end=end, grants=grants)
    pricing = PeriodPricing(
        {s.plan_id for subs in subscriptions.values() for s in subs}, set(account_ids)
    )
    codes = {(a, features[row[3]]) for a, rows in usage.items() for row in rows}
    terms = terms_over_range(codes=codes, subscriptions=subscriptions, start=start, end=end)
    used = used_at_start(terms=terms, subscriptions=subscriptions, start=start)

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
            terms=terms.get(account_id) or [(start, {})],
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
        (_, self.terms), *self.later_terms = terms
        self.subscriptions = subscriptions
        self.pricing = pricing
        self.counters = _Counters()
        self._requests = {}
        for key, value in used.items():
            self.counters.rows[key].used = value
        subscription = live_at(subscriptions, start)
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
        moments = [(at, TERMS, 0, terms) for at, terms in self.later_terms]
        for s in self.subscriptions:
            moments += [(at, CATCH_UP if at == s.live_until else BOUNDARY, s.pk, (s, period))
                        for at, period in s.renewals]  # fmt: skip
            moments += [(at, FLAG, s.pk, (s, flag)) for at, flag in s.cancel_flags]
            if s.live_until is not None and start <= s.live_until < end:
                moments.append((s.live_until, CLOSE, s.pk, s))
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
            if what == CLOSE:
                self._end(item)
            elif what == TERMS:
                self._switch_terms(item)
            elif what in (CATCH_UP, BOUNDARY):
                self._renew(*item)
            elif what == FLAG:
                self._cancel_flag(*item)
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

    def _switch_terms(self, terms):
        """The terms change (a subscription began or ended, a trial converted, a contract
        began or ended): from now on, usage meets `terms`, its quotas the period it is in."""
        self.terms = terms
        subscription = live_at(self.subscriptions, self.book.now)
        self.period_start = period_start_at(subscription, self.book.now) if subscription else None
        self._terms_now = self._terms_for_period()

    def _renew(self, subscription, period):
        """The renewal of the period starting at `period`, by the renewal's own step."""
        plan = subscription.plan
        # The period's end: as the real period grant had it (an interval changed since, or
        # Stripe's anchor), else the calendar's.
        _, following = subscription.periods.get(period, (None, None))
        following = following or period_end_after(
            anchor=subscription.billing_anchor, interval=plan.billing_interval, moment=period
        )
        terms = self.pricing.terms(subscription, plan, period)
        new = period_grants(subscription, terms, period, following, self.book.now)
        # A contract may include credits of a type its plan does not: from the same terms.
        for allowance in terms.allowances:
            self._state(allowance.credit_type_id, allowance.credit_type)
        # Only the wallets the renewal locks: its plans' and contract's credit types. The
        # first period of a subscription (no trial before it) ends nothing.
        states = []
        if period != subscription.live_from or subscription.trial_start is not None:
            keys = self.pricing.wallet_keys(self.account.pk, [plan.pk])
            states = [state for key, state in self.book.states.items() if key in keys]
        renew_period(
            book=self.book, subscription=subscription, states=states, start=period,
            ended_terms=self.pricing.ended(subscription, plan, period), period=new,
            granted=set(), fees=[],
        )  # fmt: skip
        self.period_start = period
        self._terms_now = self._terms_for_period()

    def _end(self, subscription):
        """The subscription ended here: what is left of its period's and trial's credits
        closes, as put_account_on_plan and end_subscription close it. A switch to another
        plan (the next subscription starts at this moment) rolls over by the ended
        period's terms; a cancellation carries nothing over."""
        ended = subscription.live_until
        switched = any(
            s is not subscription and (s.live_from == ended or ended in s.granted_at)
            for s in self.subscriptions
        )
        for state, grant in subscription_grants(subscription, self.book, Source.TRIAL):
            state.close(grant)
        for state, grant in subscription_grants(subscription, self.book, Source.PLAN_PERIOD):
            if not switched:
                grant.rollover_percent = None
            state.close(grant)
        self._next_expiry()

    def _cancel_flag(self, subscription, cancel):
        """Cancel at period end set (the period's credits will roll nothing over) or cleared
        (they roll over by their period's terms again), as `_set_cancel` does."""
        for _, grant in subscription_grants(subscription, self.book, Source.PLAN_PERIOD):
            like = None
            if not cancel:
                terms = self.pricing.terms(subscription, subscription.plan, grant.effective_at)
                new, _ = period_grants(subscription, terms, grant.effective_at, grant.expires_at,
                                       self.book.now)  # fmt: skip
                like = next((g for _, g in new if g.reference == grant.reference), None)
            carry_rollover_terms(grant, like)

    def _grant(self, kind, real):
        trial = self._draft_trial(real)
        if trial is not None:
            if trial:
                state = self._state(real.wallet.credit_type_id, real.wallet.credit_type)
                state.add_grant(trial, reason=trial.reason)
                self.copies[real.pk] = trial
            return
        grant = copy.copy(real)
        grant.pk = grant.voided_at = None
        grant.debt_settled = ZERO
        self.copies[real.pk] = grant
        state = self._state(real.wallet.credit_type_id, real.wallet.credit_type)
        state.add_grant(grant, kind=kind, reason=real.reason)

    def _draft_trial(self, real):
        """A trial's credits by the draft's plan, for the real trial grant `real`: the
        draft's grant of its credit type (False when the draft grants none of it); None
        when `real` is not a trial of a subscription replayed here."""
        if real.source != Source.TRIAL:
            return None
        for s in self.subscriptions:
            if subscription_of(real) == s.pk:
                allowances = self.pricing.allowances[s.plan_id]
                grants, _ = trial_grants(s, s.plan, allowances, real.effective_at,
                                         real.expires_at, self.book.now)  # fmt: skip
                return next((g for _, g in grants if g.reference == real.reference), False)
        return None

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
