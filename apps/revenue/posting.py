"""Posting the ledger into revenue lines (models.RevenueLine), and the cents that move.

A run takes every ledger entry that moves a grant's credits and that no run has taken yet,
up to the horizon (apps/core/horizon.py: no entry below it can still commit), adds them to
the lines of their grant, month and kind, and derives the cents of every line of the grants
it touched from their credits (`derive_amounts`). One run at a time (the cursor row is
locked); a run is one transaction, so a run that dies leaves the last one's lines whole.
Consumes pay nothing for this: the ledger's rows already carry what posting needs.
The same run posts the platform fees written or cut since (fees.post_fees) and the cash
refunds billing recorded (`derive_refunds`).
"""

from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import TruncMonth

from apps.core import clock, horizon
from apps.core.allocation import released
from apps.core.decimals import credit_sum, money_sum
from apps.jobs.counts import JobCounts
from apps.wallets.models import CreditGrant, LedgerEntry

from .fees import post_fees
from .models import CashRefund, PostingCursor, RevenueLine, RevenueMonth
from .months import first_open, month_of

Entry = LedgerEntry.Kind
Line = RevenueLine.Kind

# What a ledger entry on a grant is in revenue terms, by its kind and the sign of its amount.
LINE_KIND = {
    (Entry.GRANT, 1): Line.GRANTED,
    (Entry.ADJUST, 1): Line.GRANTED,  # a staff grant
    (Entry.ROLLOVER, 1): Line.GRANTED,  # the rollover grant: carries the cents rolled over
    (Entry.CONSUME, -1): Line.CONSUMED,
    (Entry.ADJUST, -1): Line.CLAWED_BACK,  # a staff correction taking credits back
    (Entry.VOID, -1): Line.CLAWED_BACK,  # a refund, dispute or void
    (Entry.EXPIRE, -1): Line.EXPIRED,
    (Entry.ROLLOVER, -1): Line.ROLLED_OVER,
}
MOVING_KINDS = sorted({kind for kind, _ in LINE_KIND})
# Lines of cash refunded beyond deferred revenue: not credits leaving, so outside the release.
REFUND_PAIR = (Line.REFUND_CASH, Line.REFUND_REVERSAL)
# Within a month, cents are released in this order (models.RevenueLine.Kind's order).
RELEASE_ORDER = {kind: i for i, kind in enumerate(Line.values)}
OUTFLOWS = frozenset(Line.values) - {Line.GRANTED}


def locked_cursor():
    # Why the lock: one posting run at a time; a second waits here, then finds nothing new.
    PostingCursor.objects.get_or_create(pk=1)
    return PostingCursor.objects.select_for_update().get(pk=1)


def _position(cursor):
    return horizon.Position(
        snapshot=cursor.snapshot, own=cursor.own_transaction, last_id=cursor.last_entry_id
    )


def _new_movements(cursor):
    """(grant id, month, ledger kind, sign) -> credits, for the entries not posted yet;
    and the cursor's new position."""
    upto = horizon.current(LedgerEntry)
    entries = horizon.between(
        LedgerEntry.objects.filter(grant__isnull=False, kind__in=MOVING_KINDS),
        after=_position(cursor),
        upto=upto,
    )
    position = {"snapshot": upto.snapshot, "own_transaction": upto.own,
                "last_entry_id": upto.last_id}  # fmt: skip
    return list(movements(entries)), position


def movements(entries):
    """Ledger entries summed by grant, month, kind and sign of amount: what posting adds to
    the lines, and what verify_revenue recomputes them from."""
    return (
        entries.annotate(
            month=TruncMonth("created_at"),
            sign=Case(When(amount__gt=0, then=Value(1)), default=Value(-1),
                      output_field=IntegerField()),
        )
        .values("grant_id", "month", "kind", "sign")
        .annotate(credits=Sum("amount"), entries=Sum(Value(1)))
        .order_by()
    )  # fmt: skip


def post_revenue(*, now=None, on_chunk=None, chunk_size=None):
    """Post what the ledger has gained since the last run, and the platform fees written or
    cut since. Returns JobCounts (`posted`: ledger entries taken; `fees_posted`)."""
    counts = JobCounts()
    with transaction.atomic(durable=True):
        counts.posted, counts.fees_posted = post_locked(locked_cursor())
    counts.chunks = 1
    if on_chunk:
        on_chunk(counts)
    return counts


def post_locked(cursor):
    """Post, in the caller's transaction, holding the cursor's lock. Returns the number of
    ledger entries taken and of platform fees posted."""
    rows, position = _new_movements(cursor)
    closed = set(RevenueMonth.objects.filter(closed=True).values_list("month", flat=True))
    # Why the lock: billing writes refunds while this runs; the flag is cleared only on the
    # rows read here, and one committed meanwhile waits for the next run.
    refunds = list(
        CashRefund.objects.filter(needs_posting=True).order_by("pk").select_for_update(of=("self",))
    )
    grants = CreditGrant.objects.select_related("wallet").in_bulk(
        {row["grant_id"] for row in rows} | {refund.grant_id for refund in refunds}
    )
    posted = sum(row["entries"] for row in rows)
    if rows:
        deltas = defaultdict(Decimal)
        for row in rows:
            grant = grants[row["grant_id"]]
            kind = LINE_KIND[(row["kind"], row["sign"])]
            dated = month_of(row["month"])
            month = first_open(dated, closed)
            deltas[(grant.pk, month, dated, kind)] += abs(credit_sum(row["credits"]))
            if kind == Line.GRANTED and grant.debt_settled:
                # The part of a new grant that paid back earlier overage: used already.
                deltas[(grant.pk, month, dated, Line.SETTLED)] += grant.debt_settled
        _add_to_lines(deltas, grants)
    if grants:
        derive_amounts(grants.values(), closed=closed, refunds=refunds)
    CashRefund.objects.filter(pk__in=[refund.pk for refund in refunds]).update(needs_posting=False)
    for name, value in position.items():
        setattr(cursor, name, value)
    cursor.posted_at = clock.now()
    cursor.save()
    return posted, post_fees(closed=closed)


def _add_to_lines(deltas, grants):
    existing = {
        (line.grant_id, line.month, line.dated_month, line.kind): line
        for line in RevenueLine.objects.filter(grant_id__in={key[0] for key in deltas})
    }
    new, changed = [], []
    for key, credits in deltas.items():
        line = existing.get(key)
        if line is not None:
            line.credits += credits
            changed.append(line)
            continue
        grant_id, month, dated, kind = key
        grant = grants[grant_id]
        new.append(
            RevenueLine(
                grant_id=grant_id, month=month, dated_month=dated, kind=kind, credits=credits,
                account_id=grant.account_id, credit_type_id=grant.wallet.credit_type_id,
                plan_id=grant.plan_id, source=grant.source, currency=grant.currency,
            )
        )  # fmt: skip
    RevenueLine.objects.bulk_create(new, batch_size=5000)
    RevenueLine.objects.bulk_update(changed, ["credits"], batch_size=5000)


def release_order(line):
    return (line.month, RELEASE_ORDER[line.kind], line.dated_month)


def amounts_of(grant, lines):
    """The cents each of a grant's lines moves: the grant line bills its basis; outflows
    release it cumulatively, month by month and kind by kind (RELEASE_ORDER), so they add
    up to the basis exactly once all its credits are out. `lines` in any order."""
    out = Decimal(0)
    amounts = []
    for line in sorted(lines, key=release_order):
        if line.kind in REFUND_PAIR:
            continue  # derive_refunds
        if line.kind == Line.GRANTED:
            amounts.append((line, grant.basis_amount))
            continue
        before = released(grant.basis_amount, grant.amount, out, currency=grant.currency)
        out += line.credits
        amounts.append(
            (
                line,
                released(grant.basis_amount, grant.amount, out, currency=grant.currency) - before,
            )
        )
    return amounts


def derive_amounts(grants, *, closed, refunds=()):
    """Set the cents of every line of `grants` from their credits, then their refund
    lines (from the cash refunds posted before and `refunds`, this run's)."""
    by_grant = defaultdict(list)
    for line in RevenueLine.objects.filter(grant_id__in=[g.pk for g in grants]):
        by_grant[line.grant_id].append(line)
    changed = []
    for grant in grants:
        for line, amount in amounts_of(grant, by_grant[grant.pk]):
            if line.amount != amount:
                line.amount = amount
                changed.append(line)
    RevenueLine.objects.bulk_update(changed, ["amount"], batch_size=5000)
    derive_refunds(grants, by_grant, closed=closed, refunds=refunds)


def refunded_beyond(*, cash, lines):
    """Of `cash` refunded on a grant, what its claw-backs did not release of deferred
    revenue: refunded out of revenue recognised already (negative when they released a cent
    more than the cash, by rounding). What the grant's REFUND_CASH lines add up to."""
    return cash - sum(line.amount for line in lines if line.kind == Line.CLAWED_BACK)


def derive_refunds(grants, by_grant, *, closed, refunds):
    """Bring each grant's refund pair to `refunded_beyond` its cash refunds. Lines of closed
    months stay; a difference goes to the month of its latest refund, or the first open one."""
    cash = {
        row["grant_id"]: row
        # Only refunds posted before or locked by this run: one committed since waits for
        # the next run, like its claw-back's ledger entry.
        for row in CashRefund.objects.filter(grant_id__in=[g.pk for g in grants])
        .filter(Q(needs_posting=False) | Q(pk__in=[refund.pk for refund in refunds]))
        .values("grant_id").annotate(total=Sum("amount"), last=Max("created_at")).order_by()
    }  # fmt: skip
    new, changed = [], []
    for grant in grants:
        if grant.pk not in cash:
            continue
        lines = by_grant[grant.pk]
        difference = refunded_beyond(cash=money_sum(cash[grant.pk]["total"]), lines=lines) - sum(
            line.amount for line in lines if line.kind == Line.REFUND_CASH
        )
        if not difference:
            continue
        dated = month_of(cash[grant.pk]["last"])
        month = first_open(dated, closed)
        for kind, amount in ((Line.REFUND_CASH, difference), (Line.REFUND_REVERSAL, -difference)):
            line = next((found for found in lines if (found.month, found.dated_month, found.kind)
                         == (month, dated, kind)), None)  # fmt: skip
            if line is None:
                new.append(RevenueLine(
                    grant_id=grant.pk, month=month, dated_month=dated, kind=kind, credits=0,
                    amount=amount, account_id=grant.account_id,
                    credit_type_id=grant.wallet.credit_type_id, plan_id=grant.plan_id,
                    source=grant.source, currency=grant.currency,
                ))  # fmt: skip
            else:
                line.amount += amount
                changed.append(line)
    RevenueLine.objects.bulk_create(new)
    RevenueLine.objects.bulk_update(changed, ["amount"])
