"""`manage.py verify_revenue`: the posted lines against a full recomputation from the raw
ledger, each grant against its basis, and the revenue identity for every month and
currency (docs/revenue.md, "Checking it")."""

from collections import defaultdict
from decimal import Decimal

from django.db.models import Max, Min, Sum

from apps.core import horizon
from apps.core.decimals import credit_sum, money_sum
from apps.wallets.models import CreditGrant, LedgerEntry

from . import selectors
from .fees import schedule
from .models import CashRefund, FeeLine, PostingCursor, RatableFee, RevenueLine, RevenueMonth
from .months import month_of
from .posting import (
    LINE_KIND,
    MOVING_KINDS,
    OUTFLOWS,
    REFUND_PAIR,
    amounts_of,
    movements,
    refunded_beyond,
)

Line = RevenueLine.Kind


def _posted_entries():
    """The ledger entries the last posting run had taken (and only those)."""
    cursor = PostingCursor.objects.filter(pk=1).first()
    entries = LedgerEntry.objects.filter(grant__isnull=False, kind__in=MOVING_KINDS)
    if cursor is None:
        return entries.none()
    upto = horizon.Position(
        snapshot=cursor.snapshot, own=cursor.own_transaction, last_id=cursor.last_entry_id
    )
    return horizon.between(entries, after=horizon.Position(), upto=upto)


def _ledger_credits():
    """(grant id, dated month, line kind) -> credits, recomputed from the ledger."""
    rows = movements(_posted_entries())
    expected, unknown = defaultdict(Decimal), []
    for row in rows.iterator(chunk_size=10_000):
        kind = LINE_KIND.get((row["kind"], row["sign"]))
        if kind is None:
            unknown.append(f"grant #{row['grant_id']} has {row['kind']} entries of sign "
                           f"{row['sign']}, which revenue does not know")  # fmt: skip
            continue
        expected[(row["grant_id"], month_of(row["month"]), kind)] += abs(credit_sum(row["credits"]))
    return expected, unknown


def _check_lines_against_ledger(problems):
    expected, unknown = _ledger_credits()
    problems += unknown
    posted = defaultdict(Decimal)
    for row in (
        RevenueLine.objects.values("grant_id", "dated_month", "kind")
        .annotate(credits=Sum("credits"))
        .order_by()
        .iterator(chunk_size=10_000)
    ):
        posted[(row["grant_id"], row["dated_month"], row["kind"])] += credit_sum(row["credits"])
    settled = dict(
        CreditGrant.objects.filter(debt_settled__gt=0, revenue_lines__kind=Line.GRANTED)
        .values_list("pk", "debt_settled")
        .distinct()
    )
    for grant_id, month, kind in list(expected):
        if kind == Line.GRANTED and grant_id in settled:
            expected[(grant_id, month, Line.SETTLED)] += settled[grant_id]
    for key in sorted(set(expected) | set(posted), key=str):
        if expected.get(key, 0) != posted.get(key, 0):
            grant_id, month, kind = key
            problems.append(
                f"grant #{grant_id}, {month:%Y-%m}, {kind}: ledger says "
                f"{expected.get(key, 0)} credits, revenue lines {posted.get(key, 0)}"
            )


def _check_grants(problems):
    """Each grant's lines carry the cents the allocation rule gives; its billed line is its
    basis; what it released never exceeds it, and equals it once all its credits are out."""
    by_grant = defaultdict(list)
    for line in RevenueLine.objects.order_by("grant_id").iterator(chunk_size=10_000):
        by_grant[line.grant_id].append(line)
    grants = CreditGrant.objects.in_bulk(list(by_grant))
    cash_refunds = {
        grant_id: money_sum(total)
        for grant_id, total in CashRefund.objects.filter(needs_posting=False)
        .values("grant_id").annotate(total=Sum("amount"))
        .order_by().values_list("grant_id", "total")
    }  # fmt: skip
    for grant_id, lines in by_grant.items():
        grant = grants[grant_id]
        for line, amount in amounts_of(grant, lines):
            if line.amount != amount:
                problems.append(
                    f"grant #{grant_id}: {line.kind} line of {line.month:%Y-%m} holds "
                    f"{line.amount}, the allocation gives {amount}"
                )
        out_credits = sum(line.credits for line in lines if line.kind in OUTFLOWS)
        out_amount = sum(line.amount for line in lines if line.kind in OUTFLOWS)
        billed = sum(line.amount for line in lines if line.kind == Line.GRANTED)
        if billed != grant.basis_amount:
            problems.append(f"grant #{grant_id}: billed {billed}, basis {grant.basis_amount}")
        if out_credits > grant.amount or out_amount > grant.basis_amount:
            problems.append(f"grant #{grant_id}: released more than it holds")
        if grant_id in cash_refunds or any(line.kind in REFUND_PAIR for line in lines):
            _check_refund_pair(problems, grant_id, lines, cash_refunds.get(grant_id, 0))
        if out_credits == grant.amount and out_amount != grant.basis_amount:
            problems.append(
                f"grant #{grant_id}: all credits out, released {out_amount} of {grant.basis_amount}"
            )


def _check_refund_pair(problems, grant_id, lines, cash):
    """A grant's cash refunds are its claw-backs' cents plus its REFUND_CASH lines, which
    REFUND_REVERSAL lines cancel."""
    refunded = sum(line.amount for line in lines if line.kind == Line.REFUND_CASH)
    reversed_ = sum(line.amount for line in lines if line.kind == Line.REFUND_REVERSAL)
    if refunded != refunded_beyond(cash=cash, lines=lines) or reversed_ != -refunded:
        problems.append(
            f"grant #{grant_id}: cash refunded {cash}, beyond its claw-backs "
            f"{refunded_beyond(cash=cash, lines=lines)}; refund lines {refunded} and {reversed_}"
        )


def _check_months(problems):
    """For every month and currency: the identity, rollovers cancelling out, each month
    opening where the last closed, and closed months still as frozen."""
    months = [
        month
        for model in (RevenueLine, FeeLine)
        for month in model.objects.aggregate(first=Min("month"), last=Max("month")).values()
        if month is not None
    ]
    if not months:
        return
    first, last = min(months), max(months)
    frozen = {m.month: m.figures for m in RevenueMonth.objects.filter(closed=True)}
    months = selectors.series(first=first, last=last)
    previous = {}
    for month, figures in months.items():
        for (currency,), f in figures.items():
            where = f"{month:%Y-%m} {currency}"
            if f.opening_deferred != previous.get(currency, Decimal(0)):
                problems.append(f"{where}: opens at {f.opening_deferred}, last month closed "
                                f"at {previous.get(currency, 0)}")  # fmt: skip
            left = f.opening_deferred + f.billed - f.refunded
            right = f.recognised + f.breakage + f.closing_deferred
            if left != right:
                problems.append(f"{where}: opening + billed - refunded = {left}, "
                                f"recognised + breakage + closing = {right}")  # fmt: skip
            if f.rolled_over != f.rolled_in:
                problems.append(f"{where}: rolled over {f.rolled_over}, rolled in "
                                f"{f.rolled_in}")  # fmt: skip
            if f.closing_deferred < 0:
                problems.append(f"{where}: closing deferred {f.closing_deferred} < 0")
            if f.fees_deferred < 0:
                problems.append(f"{where}: platform fees deferred {f.fees_deferred} < 0")
            stored = frozen.get(month, {}).get(currency)
            if stored is not None and selectors.Figures.from_json(stored) != f:
                problems.append(f"{where}: closed month's frozen figures differ from its lines")
            previous[currency] = f.closing_deferred


def _check_fees(problems):
    """Each posted platform fee's lines hold its schedule: billed once, recognised month by
    month to its amount (to its cut, when its period ended early)."""
    by_fee = defaultdict(dict)
    rows = FeeLine.objects.values("fee_id", "dated_month", "kind").annotate(total=Sum("amount"))
    for row in rows.order_by().iterator(chunk_size=10_000):
        by_fee[row["fee_id"]][(row["dated_month"], row["kind"])] = money_sum(row["total"])
    for fee in RatableFee.objects.filter(needs_posting=False).iterator(chunk_size=10_000):
        wanted, lines = schedule(fee), by_fee.pop(fee.pk, {})
        for dated, kind in sorted(set(wanted) | set(lines)):
            if wanted.get((dated, kind), 0) != lines.get((dated, kind), 0):
                problems.append(
                    f"platform fee #{fee.pk}, {dated:%Y-%m}, {kind}: its schedule gives "
                    f"{wanted.get((dated, kind), 0)}, its lines hold {lines.get((dated, kind), 0)}"
                )
    waiting = set(RatableFee.objects.filter(needs_posting=True).values_list("pk", flat=True))
    for fee_id in sorted(set(by_fee) - waiting):
        problems.append(f"platform fee #{fee_id}: lines without a posted fee")


def verify_revenue():
    """Every difference found, as sentences; empty when revenue agrees with the ledger."""
    problems = []
    _check_lines_against_ledger(problems)
    _check_grants(problems)
    _check_fees(problems)
    _check_months(problems)
    return problems
