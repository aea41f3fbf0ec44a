"""Billing periods: put an account on a plan, renew periods (catching up missed ones), change
or cancel a plan at period end, and the jobs that expire grants and release reservations.
docs/periods.md states the rules.

Every writer here locks in the order the rest of the ledger does: the subscription row
(claimed with SKIP LOCKED by the jobs), then wallets in id order, and reads grants after the
wallet lock. The renewal job works in chunks (apps/jobs/runner.py), each its own durable
transaction with a constant number of statements, so a run can be killed at any point and run
again, or run twice at once."""

from datetime import UTC, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from apps.accounts.models import Subscription
from apps.catalog.contracts import period_terms
from apps.catalog.models import Contract, Plan, PlanAllowance
from apps.catalog.pricing import price_split
from apps.core import clock, events
from apps.core.allocation import cost_basis
from apps.core.decimals import UNIT_PRICE_PLACES
from apps.core.errors import InvalidInput
from apps.jobs.counts import JobCounts, in_parallel
from apps.jobs.runner import run_in_chunks
from apps.revenue.fees import cut_fees
from apps.revenue.models import RatableFee
from apps.wallets.ledger import LedgerBook
from apps.wallets.models import CreditGrant
from apps.webhooks.services import record_events

from .calendar import boundary, period_end_after

# --- period grants ------------------------------------------------------------------------


def period_reference(subscription_id, start, credit_type_code, *, kind="period"):
    """The idempotency handle of a period's grant: `period:<subscription>:<start>:<credits>`
    (one per credit type: a plan may grant several, docs/periods.md);
    `overage:…` for the grant that bills the overage of the period ending at `start`."""
    return f"{kind}:{subscription_id}:{start.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}:{credit_type_code}"


# The grants whose references name their subscription (`period_reference`), by source.
SUBSCRIPTION_KINDS = {CreditGrant.Source.PLAN_PERIOD: "period", CreditGrant.Source.TRIAL: "trial"}


def subscription_of(grant):
    """The id of the subscription a period or trial grant was made for (its reference says),
    else None."""
    kind, _, rest = (grant.reference or "").partition(":")
    subscription_id = rest.partition(":")[0]
    if SUBSCRIPTION_KINDS.get(grant.source) != kind or not subscription_id.isdigit():
        return None
    return int(subscription_id)


def subscription_grants(subscription, book, source):
    """The subscription's period (or trial: `source`) grants with credits left in `book`,
    with their wallets."""
    prefix = f"{SUBSCRIPTION_KINDS[source]}:{subscription.pk}:"
    return [
        (state, grant)
        for state in book.states.values()
        if state.wallet.account_id == subscription.account_id
        for grant in state.grants
        if grant.source == source and (grant.reference or "").startswith(prefix)
    ]


def carry_rollover_terms(grant, like):
    """`grant` rolls over as `like` (a grant of its period by the terms that apply) would;
    with `like` None, nothing of it rolls over (a cancellation)."""
    grant.rollover_percent = like.rollover_percent if like else None
    grant.rollover_cap = like.rollover_cap if like else None
    grant.rollover_expires_at = like.rollover_expires_at if like else None


def _bases(plan, allowances):
    """What each allowance's credits were paid, as (basis, unit price) per allowance, and
    the platform fee's part of the price: the plan's price split by apps/catalog/pricing.py
    (docs/revenue.md, "Plan periods: allocating the price")."""
    bases, fee = price_split(plan=plan, allowances=allowances)
    unit = Decimal(1).scaleb(-UNIT_PRICE_PLACES)
    return [
        (basis, (basis / a.credits_per_period).quantize(unit) if a.credits_per_period else basis)
        for basis, a in zip(bases, allowances, strict=True)
    ], fee


def period_grants(subscription, terms, start, end, now):
    """The plan-period grants for one period, by `terms` (the plan's, its contract applied:
    apps/catalog/contracts.period_terms), with the plan's rollover terms snapshotted:
    whoever closes them at `end` rolls over by the terms of the period they belong to; and
    the period's platform fee (an unsaved RatableFee, None without one). `_add_period`
    writes both."""
    plan = terms.plan
    periods = plan.rollover_expires_after_periods
    # Rolled credits that expire after 0 periods would expire as they roll: none roll.
    percent = (plan.rollover_percent or None) if periods != 0 else None
    rollover_expires_at = None
    if percent and periods:
        rollover_expires_at = period_end_after(
            anchor=subscription.billing_anchor,
            interval=plan.billing_interval,
            moment=end,
            periods=periods,
        )
    bases, fee = _bases(terms, terms.allowances)
    grants = [
        (
            allowance.credit_type_id,
            CreditGrant(
                source=CreditGrant.Source.PLAN_PERIOD,
                amount=allowance.credits_per_period,
                priority=CreditGrant.DEFAULT_PRIORITY,
                effective_at=start,
                expires_at=end,
                unit_price=unit_price,
                basis_amount=basis,
                currency=terms.currency,
                plan=plan,
                reference=period_reference(subscription.pk, start, allowance.credit_type.code),
                reason=f"{terms.name}: period {start:%Y-%m-%d} to {end:%Y-%m-%d}",
                rollover_percent=percent,
                rollover_cap=plan.rollover_cap if percent else None,
                rollover_expires_at=rollover_expires_at,
                created_at=now,
            ),
        )
        for allowance, (basis, unit_price) in zip(terms.allowances, bases, strict=True)
        if allowance.credits_per_period > 0
    ]
    if not fee:
        return grants, None
    return grants, RatableFee(
        subscription=subscription,
        account_id=subscription.account_id,
        plan=plan,
        currency=terms.currency,
        period_start=start,
        period_end=end,
        amount=fee,
        created_at=now,
    )


def trial_grants(subscription, plan, allowances, start, end, now):
    """A trial's credits, free (no cost basis), expiring when the trial ends; as a period
    without a fee, for `_add_period`."""
    grants = [
        (
            allowance.credit_type_id,
            CreditGrant(
                source=CreditGrant.Source.TRIAL,
                amount=allowance.trial_credits,
                priority=CreditGrant.DEFAULT_PRIORITY,
                effective_at=start,
                expires_at=end,
                currency=plan.currency,
                plan=plan,
                reference=period_reference(
                    subscription.pk, start, allowance.credit_type.code, kind="trial"
                ),  # fmt: skip
                reason=f"{plan.name}: trial {start:%Y-%m-%d} to {end:%Y-%m-%d}",
                created_at=now,
            ),
        )
        for allowance in allowances
        if allowance.trial_credits > 0
    ]
    return grants, None


def trial_days_for(*, account, plan):
    """The days of `plan`'s trial `account` would get now: the plan's, on its first
    subscription to the plan (any version); else 0."""
    if not plan.trial_days:
        return 0
    # A subscription keeps only its last plan (a change at period end rewrites it): trial
    # credits granted on the plan count as a trial had too.
    tried = (
        Subscription.objects.filter(account=account, plan__code=plan.code).exists()
        or CreditGrant.objects.filter(
            account=account, source=CreditGrant.Source.TRIAL, plan__code=plan.code
        ).exists()
    )
    return 0 if tried else plan.trial_days


def _add_period(book, subscription, period, granted, fees):
    """Grant one period: its grants into `book` (the wallets locked), its platform fee into
    `fees` (written by `_write_fees` in the same transaction). The one place a period is
    granted, on every path (renewal job, catch-up, put_account_on_plan, Stripe's
    invoice.paid). Grants whose references are in `granted` (another path granted them)
    are skipped, and so is the fee of a period granted before: a replay writes nothing
    again (the fee's unique (subscription, period start) backs this). Returns the credits
    granted."""
    grants, fee = period
    new = [(key, grant) for key, grant in grants if grant.reference not in granted]
    for credit_type_id, grant in new:
        book.states[(subscription.account_id, credit_type_id)].add_grant(grant, reason=grant.reason)
    if fee is not None and len(new) == len(grants):
        fees.append(fee)
    return sum(grant.amount for _, grant in new)


def _write_fees(fees):
    """The periods' platform fees, once each: a fee already written for its (subscription,
    period start) stays as it is."""
    if fees:
        RatableFee.objects.bulk_create(fees, ignore_conflicts=True)


class PeriodPricing:
    """What periods are granted by, read once for a set of accounts: the allowances of the
    plans involved and the accounts' contracts (their allowances with them)."""

    def __init__(self, plan_ids, account_ids):
        self.allowances = {pk: [] for pk in plan_ids}
        for allowance in PlanAllowance.objects.filter(plan_id__in=plan_ids).select_related(
            "credit_type"
        ):
            self.allowances[allowance.plan_id].append(allowance)
        # Why the lock: the contract and its included credits are read in two statements;
        # a contract replaced in between would mix its old price with its new credits.
        # (Writers lock the account, then the contract; nothing locks them the other way.)
        contracts = Contract.objects.filter(account_id__in=account_ids).order_by("pk")
        self.contracts = {
            c.account_id: c
            for c in contracts.select_for_update(of=("self",)).prefetch_related(
                "allowances__credit_type"
            )
        }

    def terms(self, subscription, plan, at):
        """`plan`'s terms for the subscription's period starting at `at`."""
        return period_terms(
            plan=plan,
            allowances=self.allowances[plan.pk],
            contract=self.contracts.get(subscription.account_id),
            at=at,
            # Stripe bills a subscription in one currency: its plan's.
            currency=plan.currency if subscription.stripe_subscription_id else None,
        )

    def ended(self, subscription, plan, end):
        """`plan`'s terms for the subscription's period ending at `end` (its last moment)."""
        return self.terms(subscription, plan, end - timedelta(microseconds=1))

    def wallet_keys(self, account_id, plan_ids):
        """The wallets a period may grant into: the credit types of `plan_ids` and of the
        account's contract."""
        found = [a for plan_id in plan_ids if plan_id for a in self.allowances[plan_id]]
        if contract := self.contracts.get(account_id):
            found += contract.allowances.all()
        return {(account_id, a.credit_type_id) for a in found}


def _due_periods(subscription, now):
    """Advance `subscription` (in memory) through every period that has ended by `now`;
    returns the new periods as (plan, start, end, the ended period's plan), oldest first."""
    periods = []
    while subscription.current_period_end <= now:
        start = subscription.current_period_end
        ended_plan = subscription.plan
        if subscription.cancel_at_period_end:
            subscription.status = Subscription.Status.CANCELED
            break
        if subscription.status == Subscription.Status.TRIALING:
            subscription.status = Subscription.Status.ACTIVE  # the trial converts
        if subscription.scheduled_plan_id:
            if subscription.scheduled_plan.billing_interval != subscription.plan.billing_interval:
                subscription.billing_anchor = start  # a new interval counts from here
            subscription.plan = subscription.scheduled_plan
            subscription.scheduled_plan = None
        end = period_end_after(
            anchor=subscription.billing_anchor,
            interval=subscription.plan.billing_interval,
            moment=start,
        )
        periods.append((subscription.plan, start, end, ended_plan))
        subscription.current_period_start, subscription.current_period_end = start, end
    return periods


def _plan_ids(subscriptions, extra=()):
    """The plans `subscriptions` are on or scheduled for, and `extra`."""
    found = {s.plan_id for s in subscriptions} | {s.scheduled_plan_id for s in subscriptions}
    return (found | set(extra)) - {None}


def _renew(subscriptions, book, counts, pricing=None, until=None):
    """Renew every subscription in `subscriptions` (locked by the caller) through the periods
    ended by `until` (default `book.now`), in `book` (its wallets locked here unless the
    caller did): close each ended period, then grant the next, in time order, so a catch-up
    over several periods rolls over at each step; save the subscriptions and record
    `period.renewed`."""
    now = book.now
    until = max(until or now, now)
    pricing = pricing or PeriodPricing(
        _plan_ids(subscriptions), {s.account_id for s in subscriptions}
    )
    keys = set().union(
        *(pricing.wallet_keys(s.account_id, [s.plan_id, s.scheduled_plan_id])
          for s in subscriptions)
    )  # fmt: skip
    book.lock(keys=keys, create=True, expire=False)
    trials = {s.pk for s in subscriptions if s.status == Subscription.Status.TRIALING}
    schedule = [
        (s, [(start, pricing.ended(s, ended_plan, start),
              period_grants(s, pricing.terms(s, plan, start), start, end, now))
             for plan, start, end, ended_plan in _due_periods(s, until)])
        for s in subscriptions
    ]  # fmt: skip
    states_of = {}
    for (account_id, _), state in book.states.items():
        states_of.setdefault(account_id, []).append(state)
    # Another path (Stripe's invoice.paid) may have granted a period already: skip it. The
    # unique reference would refuse it anyway; reading first keeps the chunk going.
    references = [g.reference for _, p in schedule for _, _, (new, _) in p for _, g in new]
    references += [
        period_reference(s.pk, start, state.wallet.credit_type.code, kind="overage")
        for s, p in schedule for start, _, _ in p for state in states_of.get(s.account_id, [])
    ]  # fmt: skip
    granted = set(
        CreditGrant.objects.filter(
            account_id__in={s.account_id for s in subscriptions}, reference__in=references
        ).values_list("reference", flat=True)
    )
    overage, fees = [], []
    for subscription, periods in schedule:
        states = states_of.get(subscription.account_id, [])
        for start, ended_terms, new in periods:
            billed, credits = renew_period(
                book=book, subscription=subscription, states=states, start=start,
                ended_terms=ended_terms, period=new, granted=granted, fees=fees,
            )  # fmt: skip
            overage += [(subscription, grant) for grant in billed]
            counts.overage += sum(grant.amount for grant in billed)
            counts.granted += credits
            counts.periods += 1
        counts.renewed += 1
        counts.canceled += subscription.status == Subscription.Status.CANCELED
    for state in book.states.values():
        state.expire_due(until=until)
    counts.tally(book.entries)
    _write_fees(fees)
    _save_subscriptions(subscriptions, now)
    record_events(events=_renewed_events(schedule, trials), now=now)
    if overage:
        book.after_flush.append(lambda: events.publish(events.OVERAGE_SETTLED, charges=overage))


def renew_period(*, book, subscription, states, start, ended_terms, period, granted, fees):
    """One period boundary at `start`, in the order every renewal takes it (the renewal job
    here, and the simulator's replay of a past range): in each of the account's wallets
    `states`, what is past due closed (rollover by each grant's terms), the ended period's
    overage billed by `ended_terms`; then the new `period` (from `period_grants`) granted by
    `_add_period`. Returns (the overage grants, the credits granted)."""
    billed = []
    for state in states:
        state.expire_due(until=start)
        grant = settle_overage(subscription, ended_terms, state, start, granted)
        if grant is not None:
            billed.append(grant)
    return billed, _add_period(book, subscription, period, granted, fees)


def settle_overage(subscription, terms, state, start, granted):
    """At a period's end, the debt its overage left (docs/ledger.md) is billed at the
    overage unit price of the period's terms (its plan's, or its contract's): an `overage`
    grant of exactly the debt settles it (so the next period's credits stay whole) and
    becomes an OverageCharge, sent to Stripe as an invoice item. Returns the grant, or None
    when there is nothing to bill."""
    debt = state.wallet.debt
    reference = period_reference(
        subscription.pk, start, state.wallet.credit_type.code, kind="overage"
    )
    price = terms.overage_unit_price
    if debt <= 0 or reference in granted or not price:
        return None  # free overage is paid back in credits, by the next grant
    return state.add_grant(
        CreditGrant(
            source=CreditGrant.Source.OVERAGE,
            amount=debt,
            priority=CreditGrant.DEFAULT_PRIORITY,
            effective_at=start,
            unit_price=price,
            basis_amount=cost_basis(debt, price, currency=terms.currency),
            currency=terms.currency,
            plan=terms.plan,
            reference=reference,
            reason=f"{terms.name}: overage of the period ending {start:%Y-%m-%d}, billed at "
            f"{price.normalize()} {terms.currency} per credit",
            created_at=state.book.now,
        ),
        reason="overage billed",
    )


def _renewed_events(schedule, trials):
    """`period.renewed` per subscription that moved; `trial.ended` per trial in `trials`
    (the subscriptions that were trialing when the renewal began) that ended."""
    ended = [
        _trial_ended(
            subscription,
            converted=subscription.status == Subscription.Status.ACTIVE,
            # Converted: the first paid period starts at the trial's end; canceled: the
            # subscription's period (the trial) was left as it was.
            trial_end=periods[0][0] if periods else subscription.current_period_end,
        )
        for subscription, periods in schedule
        if subscription.pk in trials and subscription.status != Subscription.Status.TRIALING
    ]
    return ended + [
        (
            subscription.account_id,
            "period.renewed",
            {
                "subscription": subscription.pk,
                "plan": subscription.plan.code,
                "status": subscription.status,
                "period_start": subscription.current_period_start.isoformat(),
                "period_end": subscription.current_period_end.isoformat(),
                "periods": len(periods),
            },
        )
        for subscription, periods in schedule
        if periods or subscription.status == Subscription.Status.CANCELED
    ]


def _save_subscriptions(subscriptions, now):
    for s in subscriptions:
        s.updated_at = now
    if connection.vendor != "postgresql":
        Subscription.objects.bulk_update(
            subscriptions,
            ["plan", "scheduled_plan", "billing_anchor", "status", "current_period_start",
             "current_period_end", "updated_at"],
        )  # fmt: skip
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_subscription s SET plan_id = u.plan_id, "
            "scheduled_plan_id = u.scheduled_plan_id, billing_anchor = u.anchor, "
            "status = u.status, current_period_start = u.period_start, "
            "current_period_end = u.period_end, updated_at = u.updated_at "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[], "
            "%s::text[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[]) "
            "AS u(id, plan_id, scheduled_plan_id, anchor, status, period_start, period_end, "
            "updated_at) WHERE s.id = u.id",
            [[s.pk for s in subscriptions], [s.plan_id for s in subscriptions],
             [s.scheduled_plan_id for s in subscriptions],
             [s.billing_anchor for s in subscriptions], [s.status for s in subscriptions],
             [s.current_period_start for s in subscriptions],
             [s.current_period_end for s in subscriptions],
             [s.updated_at for s in subscriptions]],
        )  # fmt: skip


# --- plan changes -------------------------------------------------------------------------


def _live(account):
    # Why the lock: a plan change and the renewal job must not both move one subscription.
    return _with_plans(
        Subscription.objects.filter(account=account, status__in=Subscription.LIVE_STATUSES)
        .order_by("pk")
        .select_for_update(of=("self",))
    )


def _with_plans(subscriptions, *extra_plan_ids):
    """Attach plans read after the rows are locked, in one query: a join in the locking
    statement can come back half-empty when PostgreSQL re-checks a row that changed while
    it waited."""
    subscriptions = list(subscriptions)
    ids = {s.plan_id for s in subscriptions} | {s.scheduled_plan_id for s in subscriptions}
    plans = Plan.objects.in_bulk((ids | set(extra_plan_ids)) - {None})
    for s in subscriptions:
        s.plan = plans[s.plan_id]
        s.scheduled_plan = plans.get(s.scheduled_plan_id)
    return subscriptions


def _renewable(subscription, now):
    """Whether the renewal job would renew it now (docs/periods.md)."""
    end = subscription.current_period_end
    if subscription.stripe_subscription_id:
        end += timedelta(minutes=settings.STRIPE_RENEWAL_GRACE_MINUTES)
    held = subscription.renewal_held_since is not None
    return subscription.status in RENEWABLE and end <= now and not held


def _catch_up(account, live, book, now, *, plan_ids=()):
    """Lock the account's wallets for every plan involved (one statement), then renew what
    the job would renew, so that a plan change acts on the current period. A subscription
    the job would not renew (past due, or Stripe's within its grace) gets no new period:
    its ended period's credits are closed with the rest of what is past due."""
    pricing = PeriodPricing(_plan_ids(live, plan_ids), {account.pk})
    book.lock(keys=pricing.wallet_keys(account.pk, pricing.allowances), create=True, expire=False)
    due = [s for s in live if _renewable(s, now)]
    if due:
        _renew(due, book, JobCounts(), pricing)
    return pricing


def _close_trial_now(subscription, book):
    """A trialing subscription ended before its trial did (replaced, or ended at Stripe):
    its trial credits expire now, and `trial.ended` (not converted) is returned to record."""
    if subscription.status != Subscription.Status.TRIALING:
        return []
    for state, grant in subscription_grants(subscription, book, CreditGrant.Source.TRIAL):
        state.close(grant)
    return [_trial_ended(subscription, converted=False, trial_end=subscription.current_period_end)]


def _trial_ended(subscription, *, converted, trial_end):
    return (
        subscription.account_id,
        "trial.ended",
        {"subscription": subscription.pk, "plan": subscription.plan.code,
         "converted": converted, "trial_end": trial_end.isoformat()},
    )  # fmt: skip


def _end_period_now(subscription, now):
    """A period ended before its time: it ends now, and so does its platform fee."""
    if subscription.current_period_start < now < subscription.current_period_end:
        subscription.current_period_end = now
        cut_fees(subscription_id=subscription.pk, at=now)


def put_account_on_plan(*, account, plan, starts_at=None, acting_user=None, with_trial=True):
    """Put the account on `plan` now (a manual subscription), granting its first period, or
    its trial (`with_trial` and the plan has one the account has not had: docs/periods.md).
    A live subscription ends here, as at a period end: caught up first if the renewal job
    would renew it, then its plan credits roll over by the old plan's terms and the rest
    expires. Runs in the caller's transaction when there is one (the API's account PUT)."""
    now = clock.now()
    starts_at = starts_at or now
    with transaction.atomic():
        book = LedgerBook(now=now)
        live = _live(account)
        pricing = _catch_up(account, live, book, now, plan_ids=[plan.pk])
        ended_trials = []
        for subscription in live:
            left = subscription_grants(subscription, book, CreditGrant.Source.PLAN_PERIOD)
            for state, grant in left:
                state.close(grant)
            ended_trials += _close_trial_now(subscription, book)
            subscription.status = Subscription.Status.CANCELED
            _end_period_now(subscription, now)
            subscription._history_user = acting_user
            subscription.save()
        trial_days = trial_days_for(account=account, plan=plan) if with_trial else 0
        subscription = Subscription(
            account=account,
            plan=plan,
            billing_anchor=starts_at,
            current_period_start=starts_at,
            current_period_end=boundary(anchor=starts_at, interval=plan.billing_interval, index=1),
        )
        if trial_days:
            # The first paid period starts when the trial ends, and periods count from there.
            subscription.status = Subscription.Status.TRIALING
            subscription.billing_anchor = starts_at + timedelta(days=trial_days)
            subscription.current_period_end = subscription.billing_anchor
        subscription._history_user = acting_user
        subscription.save()
        start, end = subscription.current_period_start, subscription.current_period_end
        if trial_days:
            first = trial_grants(subscription, plan, pricing.allowances[plan.pk], start, end, now)
        else:
            first = period_grants(subscription, pricing.terms(subscription, plan, start), start,
                                   end, now)  # fmt: skip
        fees = []
        _add_period(book, subscription, first, set(), fees)
        _write_fees(fees)
        if subscription.current_period_end <= now:  # started in the past: catch up
            _renew([subscription], book, JobCounts(), pricing)
        for state in book.states.values():
            state.expire_due()
        book.flush()
        record_events(events=ended_trials, now=now)
    return subscription


def change_plan_at_period_end(*, account, plan, acting_user=None):
    """Schedule `plan` to take over at the next renewal (a downgrade keeps what was paid for
    until the period ends); the current plan again cancels the change."""
    now = clock.now()
    with transaction.atomic(durable=True):
        book = LedgerBook(now=now)
        subscription = _current(account)
        _catch_up(account, [subscription], book, now)  # the change is for the current period
        book.flush()
        subscription.scheduled_plan = None if plan.pk == subscription.plan_id else plan
        subscription._history_user = acting_user
        subscription.save()
        return subscription


def move_to_version_now(*, account, plan, acting_user=None):
    """Put the account's live subscription on another version of its plan from now on. The
    period and the credits granted for it stay as they are (granted under the terms they
    were sold with); credit costs, quotas and overage follow `plan` at once, its included
    credits and price from the next renewal."""
    now = clock.now()
    with transaction.atomic(durable=True):
        book = LedgerBook(now=now)
        subscription = _current(account)
        if subscription.plan.code != plan.code:
            raise InvalidInput(
                f"{plan.label} is not a version of the account's plan {subscription.plan.code}.",
                details={"plan": ["another plan: change the plan instead"]},
            )
        _catch_up(account, [subscription], book, now, plan_ids=[plan.pk])
        book.flush()
        subscription.plan = plan
        if (
            subscription.scheduled_plan is not None
            and subscription.scheduled_plan.code == plan.code
        ):
            subscription.scheduled_plan = None
        subscription._history_user = acting_user
        subscription.save()
        return subscription


def cancel_at_period_end(*, account, acting_user=None, in_caller_transaction=False):
    """End the subscription when its period ends: its plan credits then expire without
    rolling over, and no new period is granted. Purchased credits are not touched."""
    return _set_cancel(account, True, acting_user, durable=not in_caller_transaction)


def resume_subscription(*, account, acting_user=None, in_caller_transaction=False):
    """Undo `cancel_at_period_end`: the period's plan credits roll over by the plan's terms
    again (as the plan states them now)."""
    return _set_cancel(account, False, acting_user, durable=not in_caller_transaction)


def _current(account):
    live = _live(account)
    if not live:
        raise InvalidInput("This account has no live subscription.", details={"plan": ["none"]})
    return live[0]


def _set_cancel(account, cancel, acting_user, *, durable):
    now = clock.now()
    with transaction.atomic(durable=durable):
        book = LedgerBook(now=now)
        subscription = _current(account)
        pricing = _catch_up(account, [subscription], book, now)
        start = subscription.current_period_start
        terms, _ = period_grants(
            subscription,
            pricing.terms(subscription, subscription.plan, start),
            start,
            subscription.current_period_end,
            now,
        )
        terms = {grant.reference: grant for _, grant in terms}
        for _, grant in subscription_grants(subscription, book, CreditGrant.Source.PLAN_PERIOD):
            carry_rollover_terms(grant, None if cancel else terms.get(grant.reference))
            if grant.pk:  # one granted just now by the catch-up above is written by flush
                grant.save(
                    update_fields=["rollover_percent", "rollover_cap", "rollover_expires_at"]
                )
        book.flush()
        subscription.cancel_at_period_end = cancel
        subscription._history_user = acting_user
        subscription.save()
        return subscription


def locked_subscription(**lookup):
    """The subscription matching `lookup`, locked, with its plans; None if there is none."""
    # Why the lock: Stripe's events and the renewal job must not both move one subscription.
    found = Subscription.objects.filter(**lookup).order_by("pk").select_for_update(of=("self",))
    return next(iter(_with_plans(found)), None)


def renew_subscription(*, subscription, until=None):
    """Renew one subscription (locked by the caller, in the caller's transaction) through
    the periods ended by `until`: Stripe's invoice.paid, which says a period began at
    `until`, even a moment before this clock does. The same steps and grant references as
    the renewal job: whichever comes first renews, the other finds nothing due."""
    book = LedgerBook()
    _renew([subscription], book, JobCounts(), until=until)
    book.flush()
    return subscription


def end_subscription(*, subscription, acting_user=None):
    """End a live subscription now (Stripe canceled it): what is left of its period's plan
    credits expires without rolling over; purchased credits stay. In the caller's
    transaction, the subscription locked by the caller."""
    now = clock.now()
    book = LedgerBook(now=now)
    _catch_up(subscription.account, [subscription], book, now)
    for state, grant in subscription_grants(subscription, book, CreditGrant.Source.PLAN_PERIOD):
        grant.rollover_percent = None  # a canceled plan carries nothing over
        state.close(grant)
    ended_trial = _close_trial_now(subscription, book)
    book.flush()
    record_events(events=ended_trial, now=now)
    subscription.status = Subscription.Status.CANCELED
    subscription.cancel_at_period_end = False
    subscription.scheduled_plan = None
    _end_period_now(subscription, now)
    subscription._history_user = acting_user
    subscription.save()
    return subscription


# --- the jobs ------------------------------------------------------------------------------

RENEWABLE = (Subscription.Status.ACTIVE, Subscription.Status.TRIALING)


def _due_subscriptions(now):
    """Manual plans whose period has ended; Stripe-backed ones only once Stripe's own
    renewal (invoice.paid) is overdue: the job is their catch-up. Never one whose renewal
    Stripe billed at another price (held for Finance): catching it up would grant the period
    the mismatched invoice did not pay for."""
    grace = timedelta(minutes=settings.STRIPE_RENEWAL_GRACE_MINUTES)
    due = Subscription.objects.filter(status__in=RENEWABLE, renewal_held_since__isnull=True)
    return due.filter(
        Q(stripe_subscription_id__isnull=True, current_period_end__lte=now)
        | Q(stripe_subscription_id__isnull=False, current_period_end__lte=now - grace)
    )


def renew_due_subscriptions(*, now=None, chunk_size=500, on_chunk=None, workers=None):
    """Renew every active or trialing subscription whose period has ended by `now`: close
    the ended period (roll over, expire the rest), grant the next one, reset quotas (they
    count per period), catching up every missed period in order. Returns JobCounts.

    In chunks (apps/jobs/runner.py): SKIP LOCKED, then a pass that waits for what was held
    (by a plan change, or by another copy, which has renewed it by then); one bad
    subscription costs only itself (counted in `failures`). `on_chunk(counts)` runs after
    each chunk."""
    now = now or clock.now()
    due = _due_subscriptions(now)
    failed = set()  # shared by the workers: a row that failed for one is not retried by another

    def lock(ids, *, skip_locked):
        # Why the lock: the subscription row is the claim; a second copy of the job skips it
        # (SKIP LOCKED), a plan change waits for it and then sees the renewed period.
        return _with_plans(
            due.filter(pk__in=ids)
            .order_by("pk")
            .select_for_update(of=("self",), skip_locked=skip_locked)
        )

    def run(counts, on_chunk):
        def work(subscriptions):
            if subscriptions:
                book = LedgerBook(now=now)
                _renew(subscriptions, book, counts)
                book.flush()

        run_in_chunks(due=due, lock=lock, work=work, counts=counts, chunk_size=chunk_size,
                      on_chunk=on_chunk, failed=failed, label="subscription")  # fmt: skip

    return in_parallel(run, on_chunk=on_chunk, workers=workers)
