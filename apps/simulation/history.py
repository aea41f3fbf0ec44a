"""A past range as it stood, for the replay: which subscription was live when, when each of
its periods was really renewed, how its trial and its end went, and the terms each account's
usage met at every moment they changed. Read from what CreditDesk keeps: a subscription's
first history row (how it began), its end (canceled: its last period's end, cut short by a
switch or an end at Stripe), the real period grants (when each renewal ran) and contracts.
"""

from collections import defaultdict, namedtuple
from datetime import timedelta
from itertools import pairwise

from django.db.models import Q, Sum

from apps.accounts.models import Subscription
from apps.catalog.models import Contract
from apps.periods.calendar import boundary, index_of, period_end_after
from apps.periods.services import subscription_of
from apps.usage.models import UsageEvent
from apps.usage.selectors import terms_for
from apps.wallets.models import CreditGrant

from .sandbox import subscriptions_as_of

MICROSECOND = timedelta(microseconds=1)


def subscriptions_in(*, account_ids, start, end, grants):
    """The subscriptions live at some moment of [start, end), by account, oldest first, each
    with what the replay needs of its life:
    - `live_from`: when it began (its first period's or its trial's start, as created);
    - `live_until`: when it ended (canceled: its period's end, or the moment it was ended
      after its period had ended, past due), else None;
    - `granted_at`: the moments its period and trial grants were made (`grants`: the real
      grants by id), which tell a switch from a cancellation;
    - `trial_start`: when its trial began (it was created trialing), else None, and
      `trial_until`: when the renewal converted it (None: not yet);
    - `periods`: `{period start: (when it was renewed, its end)}` from its real period
      grants, those renewed after the range included;
    - `renewals`: `(moment, period start)` per period renewed within the range: every real
      period grant made in it, and the calendar's boundaries up to its last period that
      have none (a draft may grant where reality did not), each at its boundary;
    - `cancel_flags`: `(moment, cancel at period end)` each time staff or Stripe set or
      cleared it (its history).
    """
    history = defaultdict(list)
    rows = Subscription.history.filter(account_id__in=account_ids).order_by(
        "id", "history_date", "history_id"
    )
    for pk, *row in rows.values_list("id", *Change._fields):
        history[pk].append(Change(*row))
    periods, granted_at = _real_grants(grants, account_ids, start, end)
    found = defaultdict(list)
    for s in (
        Subscription.objects.filter(account_id__in=account_ids, created_at__lt=end)
        .select_related("plan")
        .order_by("pk")
    ):
        rows = history.get(s.pk, [])
        created = rows[0] if rows and rows[0].history_type == "+" else None
        s.live_from = (created.current_period_start if created
                       else min(s.billing_anchor, s.current_period_start))  # fmt: skip
        s.periods = periods.get(s.pk, {})
        s.live_until = _ended_at(s, rows)
        if s.live_from >= end or (s.live_until is not None and s.live_until <= start):
            continue
        s.granted_at = granted_at.get(s.pk, set())
        trialed = created is not None and created.status == Subscription.Status.TRIALING
        s.trial_start = s.live_from if trialed else None
        # The trial's end as created (a later change of interval moves the anchor).
        trial_end = created.current_period_end if trialed else None
        converted = s.periods.get(trial_end)
        s.trial_until = (converted[0] if converted
                         else None if s.status == Subscription.Status.TRIALING
                         else trial_end)  # fmt: skip
        s.renewals = _renewals(s, start, end)
        s.cancel_flags = [
            (after.history_date, after.cancel_at_period_end)
            for before, after in pairwise(rows)
            if after.cancel_at_period_end != before.cancel_at_period_end
            and start <= after.history_date < end
        ]
        found[s.account_id].append(s)
    return found


# A subscription's history row: what the replay reads of it.
Change = namedtuple(
    "Change",
    "history_type history_date status cancel_at_period_end current_period_start current_period_end",
)


def _ended_at(subscription, rows):
    """A canceled subscription's last moment: its period's end when that was cut short (a
    switch, or an end at Stripe within the period: the services cut it to the moment);
    else the moment its history says it was canceled, if later (past due, ended after its
    period), or its period's natural end (cancelled at period end)."""
    if subscription.status != Subscription.Status.CANCELED:
        return None
    end = subscription.current_period_end
    if end < _natural_end(subscription):
        return end
    canceled = [r.history_date for r in rows if r.status == Subscription.Status.CANCELED]
    return max(end, canceled[0]) if canceled else end


def _natural_end(subscription):
    """When the subscription's current period would have ended: its trial's end (the
    anchor) in a trial, else its real period grant's end or the calendar's."""
    start, anchor = subscription.current_period_start, subscription.billing_anchor
    if start < anchor:
        return anchor
    _, end = subscription.periods.get(start, (None, None))
    return end or period_end_after(
        anchor=anchor, interval=subscription.plan.billing_interval, moment=start
    )


def _real_grants(grants, account_ids, start, end):
    """From the real period and trial grants (their references name the subscription:
    `period_reference`): `{subscription id: {period start: (granted at, period end)}}` and
    `{subscription id: {granted at}}`. Every period grant of a period overlapping the range
    is read, those spent before it and those made after it included: until it was made, the
    ended period was the current one."""
    overlapping = CreditGrant.objects.filter(
        account_id__in=account_ids,
        source=CreditGrant.Source.PLAN_PERIOD,
        effective_at__lt=end,
        expires_at__gt=start,
    ).only("source", "reference", "effective_at", "expires_at", "created_at")
    periods, granted_at = defaultdict(dict), defaultdict(set)
    for g in [*grants.values(), *overlapping]:
        subscription_id = subscription_of(g)
        if subscription_id is None:
            continue
        if g.source == CreditGrant.Source.PLAN_PERIOD:
            periods[subscription_id][g.effective_at] = (g.created_at, g.expires_at)
        granted_at[subscription_id].add(g.created_at)
    return periods, granted_at


def _renewals(subscription, start, end):
    anchor, interval = subscription.billing_anchor, subscription.plan.billing_interval
    found = {period: at for period, (at, _) in subscription.periods.items() if start <= at < end}
    index = index_of(anchor=anchor, interval=interval, moment=start)
    while (moment := boundary(anchor=anchor, interval=interval, index=index)) < end:
        if moment > subscription.current_period_start:
            break
        if moment not in subscription.periods:
            found[moment] = moment
        index += 1
    return sorted((at, period) for period, at in found.items())


def live_at(subscriptions, moment):
    """The subscription live at `moment`, if any."""
    for s in subscriptions:
        if s.live_from <= moment and (s.live_until is None or moment < s.live_until):
            return s
    return None


def trialing(subscription, moment):
    until = subscription.trial_until
    return subscription.trial_start is not None and (until is None or moment < until)


def period_start_at(subscription, moment):
    """The start of the period the subscription was in at `moment`, as consume saw it (quotas
    count from there): its trial's start in the trial; else the last period renewed by then
    (a renewal that ran late leaves the ended period current until it runs)."""
    if trialing(subscription, moment):
        return subscription.trial_start
    renewed = subscription.periods.items()
    if done := [period for period, (at, _) in renewed if at <= moment]:
        return max(done)
    anchor, interval = subscription.billing_anchor, subscription.plan.billing_interval
    if later := [period for period, (at, _) in renewed if at > moment]:
        # The period before the first renewed after `moment`.
        current = period_end_after(anchor=anchor, interval=interval,
                                   moment=min(later) - MICROSECOND, periods=0)  # fmt: skip
    else:
        # No renewal known: the calendar's, but never past the last renewed (past due).
        current = min(period_end_after(anchor=anchor, interval=interval, moment=moment,
                                       periods=0), subscription.current_period_start)  # fmt: skip
    return max(current, subscription.live_from)


def terms_over_range(*, codes, subscriptions, start, end):
    """`{account id: [(moment, {feature code: FeatureTerms})]}`: the terms each account's
    usage met, from `start` and again at every moment within the range they changed (a
    subscription began or ended, a trial converted, a contract began or ended), each read by
    the terms function at its moment with the sandbox's subscriptions set as they stood.
    `codes`: the (account id, feature code) pairs used."""
    wanted = defaultdict(set)
    for account_id, code in codes:
        wanted[account_id].add(code)
    moments = defaultdict(set)
    moments[start] = set(wanted)
    changes = defaultdict(set)
    for account_id in wanted:
        for s in subscriptions.get(account_id, []):
            changes[account_id] |= {s.live_from, s.live_until}
            if s.trial_start is not None:
                changes[account_id].add(s.trial_until)
    for account_id, starts_at, ends_at in Contract.objects.filter(
        account_id__in=list(wanted)
    ).values_list("account_id", "starts_at", "ends_at"):
        changes[account_id] |= {starts_at, ends_at}
    for account_id, at in ((a, at) for a, ats in changes.items() for at in ats):
        if at is not None and start < at < end:
            moments[at].add(account_id)
    found = defaultdict(list)
    for at in sorted(moments):
        account_ids = sorted(moments[at])
        live = {}
        for account_id in account_ids:
            s = live_at(subscriptions.get(account_id, []), at)
            if s is not None:
                live[s.pk] = (Subscription.Status.TRIALING if trialing(s, at)
                              else Subscription.Status.ACTIVE)  # fmt: skip
        subscriptions_as_of(account_ids=account_ids, live=live)
        pairs = [(a, code) for a in account_ids for code in wanted[a]]
        terms = defaultdict(dict)
        for (account_id, code), t in terms_for(pairs=pairs, at=at).items():
            terms[account_id][code] = t
        for account_id in account_ids:
            found[account_id].append((at, terms[account_id]))
    return found


def used_at_start(*, terms, subscriptions, start):
    """Quota counters as they stood at the range start: the units used in the period that
    held it, before it. `{(account_id, feature_id, period_start): used}`."""
    match, starts = Q(), {}
    for account_id, segments in terms.items():
        subscription = live_at(subscriptions.get(account_id, []), start)
        period = period_start_at(subscription, start) if subscription else None
        _, by_code = segments[0]
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
