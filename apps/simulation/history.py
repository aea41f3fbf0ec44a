"""A past range as it stood, for the replay: which subscription was live when, when each of
its periods was really renewed, how its trial and its end went, and the terms each account's
usage met at every moment they changed. Read from what CreditDesk keeps: a subscription's
first history row (how it began), its end (canceled: its last period's end, cut short by a
switch or an end at Stripe), the real period grants (when each renewal ran) and contracts.
"""

from collections import defaultdict
from datetime import timedelta

from django.db.models import Q, Sum

from apps.accounts.models import Subscription
from apps.catalog.models import Contract
from apps.periods.calendar import boundary, index_of, period_end_after
from apps.usage.models import UsageEvent
from apps.usage.selectors import terms_for
from apps.wallets.models import CreditGrant

from .sandbox import subscriptions_as_of

MICROSECOND = timedelta(microseconds=1)


def subscriptions_in(*, account_ids, start, end, grants):
    """The subscriptions live at some moment of [start, end), by account, oldest first, each
    with what the replay needs of its life:
    - `live_from`: when it began (its first period's or its trial's start, as created);
    - `live_until`: when it ended (canceled), else None;
    - `trial_start`: when its trial began (it was created trialing), else None, and
      `trial_until`: when the trial converted (the renewal that did it) or is due to;
    - `renewals`: `(moment, period start)` per period renewed within the range, at the moment
      the renewal really ran where its period grant says so (`grants`: the real grants by
      id), else at the period's start; a period renewed before the range is left out (the
      wallets at the range start hold it).
    """
    found = defaultdict(list)
    subscriptions = list(
        Subscription.objects.filter(
            account_id__in=account_ids, current_period_end__gt=start, created_at__lt=end
        )
        .select_related("plan")
        .order_by("pk")
    )
    created = {
        pk: (status, began)
        for pk, status, began in Subscription.history.filter(
            id__in=[s.pk for s in subscriptions], history_type="+"
        ).values_list("id", "status", "current_period_start")
    }
    renewed = _renewed_at(grants)
    for s in subscriptions:
        status, began = created.get(s.pk, (None, None))
        s.live_from = began or min(s.billing_anchor, s.current_period_start)
        s.live_until = s.current_period_end if s.status == Subscription.Status.CANCELED else None
        s.trial_start = s.live_from if status == Subscription.Status.TRIALING else None
        s.renewals = _renewals(s, start, end, renewed)
        s.trial_until = next(
            (at for at, period in s.renewals if period == s.billing_anchor), s.billing_anchor
        )
        found[s.account_id].append(s)
    return found


def _renewed_at(grants):
    """`{subscription id: {period start: when the renewal granted it}}`, from the real period
    grants (their reference names the subscription: `period_reference`)."""
    found = defaultdict(dict)
    for g in grants.values():
        kind, _, rest = (g.reference or "").partition(":")
        subscription_id = rest.partition(":")[0]
        if (
            g.source == CreditGrant.Source.PLAN_PERIOD
            and kind == "period"
            and (subscription_id.isdigit())
        ):
            found[int(subscription_id)][g.effective_at] = g.created_at
    return found


def _renewals(subscription, start, end, renewed):
    renewed = renewed.get(subscription.pk, {})
    anchor, interval = subscription.billing_anchor, subscription.plan.billing_interval
    # The calendar's boundaries in the range, up to its last period; and the periods due
    # before the range that the renewal job reached only within it.
    periods = {period for period, at in renewed.items() if period < start <= at < end}
    index = index_of(anchor=anchor, interval=interval, moment=start)
    while (moment := boundary(anchor=anchor, interval=interval, index=index)) < end:
        if moment > subscription.current_period_start:
            break
        periods.add(moment)
        index += 1
    found = []
    for period in sorted(periods):
        at = renewed.get(period, period)
        if start <= at < end:
            found.append((at, period))
    return found


def live_at(subscriptions, moment):
    """The subscription live at `moment`, if any."""
    for s in subscriptions:
        if s.live_from <= moment and (s.live_until is None or moment < s.live_until):
            return s
    return None


def trialing(subscription, moment):
    return subscription.trial_start is not None and moment < subscription.trial_until


def period_start_at(subscription, moment):
    """The start of the period the subscription was in at `moment`, as consume saw it (quotas
    count from there): its trial's start in the trial; else the last period renewed by then
    (a renewal that ran late leaves the ended period current until it runs)."""
    if trialing(subscription, moment):
        return subscription.trial_start
    if moment < subscription.billing_anchor:
        return subscription.live_from
    done = [period for at, period in subscription.renewals if at <= moment]
    if done:
        return max(done)
    due = [period for at, period in subscription.renewals if period <= moment < at]
    before = min(due) - MICROSECOND if due else moment
    anchor, interval = subscription.billing_anchor, subscription.plan.billing_interval
    return max(period_end_after(anchor=anchor, interval=interval, moment=before, periods=0),
               subscription.live_from)  # fmt: skip


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
