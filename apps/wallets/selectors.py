"""Reads of the ledger, including the invariant checks behind `verify_ledger`."""

from decimal import Decimal

from django.db.models import F, OuterRef, Q, Subquery, Sum, Value, Window
from django.db.models.functions import Coalesce

from apps.usage.models import UsageEvent
from apps.usage.selectors import CREDITS

from .models import CreditGrant, LedgerEntry, Reservation, Wallet

# SQLite keeps decimals as floats, so sums there carry rounding noise far below a credit's
# sixth decimal; PostgreSQL is exact. Differences under half a millionth are no difference.
TOLERANCE = Decimal("0.0000005")
ZERO = Value(Decimal(0), output_field=CREDITS)
REPORT_AT_MOST = 50  # entries listed per check; one broken entry breaks every later sum too


def _total(model, field, **filters):
    """Σ field over rows of `model` matching filters that reference the outer row."""
    rows = model.objects.filter(**filters).order_by().values(*filters.keys())
    return Coalesce(
        Subquery(rows.annotate(total=Sum(field)).values("total")[:1], output_field=CREDITS), ZERO
    )


def _differs(field_a, field_b):
    return Q(**{f"{field_a}__gt": F(field_b) + TOLERANCE}) | Q(
        **{f"{field_a}__lt": F(field_b) - TOLERANCE}
    )


def ledger_violations(*, account=None):
    """Every broken invariant of DESIGN.md, as readable lines; empty when the ledger is sound.

    Each check is one aggregate query returning only the offending rows.
    """
    wallets = Wallet.objects.select_related("account", "credit_type")
    grants = CreditGrant.objects.select_related("account")
    events = UsageEvent.objects.select_related("account")
    if account is not None:
        wallets = wallets.filter(account=account)
        grants = grants.filter(account=account)
        events = events.filter(account=account)
    problems = []

    checks = wallets.annotate(
        _ledger=_total(LedgerEntry, "amount", wallet=OuterRef("pk")),
        _remaining=_total(CreditGrant, "remaining", wallet=OuterRef("pk")),
        _held_ledger=_total(LedgerEntry, "held_change", wallet=OuterRef("pk")),
        _held_open=_total(
            Reservation, "credits_held", wallet=OuterRef("pk"), status=Reservation.Status.HELD
        ),
        _overage=_total(
            LedgerEntry, "amount", wallet=OuterRef("pk"), kind=LedgerEntry.Kind.OVERAGE
        ),
        _settled=_total(CreditGrant, "debt_settled", wallet=OuterRef("pk")),
    ).annotate(
        _grants_less_debt=F("_remaining") - F("debt"),
        _debt_owed=-F("_overage") - F("_settled"),
    )
    balance_vs_ledger = _differs("balance", "_ledger")
    balance_vs_grants = _differs("balance", "_grants_less_debt")
    held = _differs("held", "_held_ledger") | _differs("held", "_held_open")
    debt = _differs("debt", "_debt_owed")
    for wallet in checks.filter(balance_vs_ledger | balance_vs_grants | held | debt):
        tolerance = TOLERANCE  # the same slack the SQL filter allowed
        if abs(wallet.balance - wallet._ledger) > tolerance:
            problems.append(f"{wallet}: balance {wallet.balance} != Σ ledger {wallet._ledger}")
        if abs(wallet.balance - wallet._grants_less_debt) > tolerance:
            problems.append(
                f"{wallet}: balance {wallet.balance} != Σ remaining {wallet._remaining} − debt "
                f"{wallet.debt}"
            )
        if max(abs(wallet.held - wallet._held_ledger), abs(wallet.held - wallet._held_open)) > (
            tolerance
        ):
            problems.append(
                f"{wallet}: held {wallet.held} != Σ ledger held {wallet._held_ledger} "
                f"/ open reservations {wallet._held_open}"
            )
        if abs(wallet.debt - wallet._debt_owed) > tolerance:
            problems.append(f"{wallet}: debt {wallet.debt} != overage owed {wallet._debt_owed}")

    drawn = grants.annotate(_moves=_total(LedgerEntry, "amount", grant=OuterRef("pk"))).annotate(
        _expected=F("_moves") - F("debt_settled")
    )
    out_of_range = Q(remaining__lt=0) | Q(remaining__gt=F("amount"))
    for grant in drawn.filter(_differs("remaining", "_expected") | out_of_range):
        if not 0 <= grant.remaining <= grant.amount:
            problems.append(
                f"grant #{grant.pk}: remaining {grant.remaining} outside 0..{grant.amount}"
            )
        else:
            problems.append(
                f"grant #{grant.pk} ({grant.account}): remaining {grant.remaining} != its "
                f"ledger {grant._expected}"
            )

    # Each entry's balance_after is the wallet's running Σ amount in entry order, and the entry
    # belongs to its wallet's account.
    entries = LedgerEntry.objects.all()
    if account is not None:
        entries = entries.filter(account=account)
    chain = entries.annotate(
        _running=Window(Sum("amount"), partition_by=[F("wallet_id")], order_by=F("id").asc())
    ).filter(_differs("balance_after", "_running"))
    for entry in chain.order_by("id")[:REPORT_AT_MOST]:
        problems.append(
            f"ledger entry #{entry.pk} (wallet #{entry.wallet_id}): balance_after "
            f"{entry.balance_after} != running Σ amount {entry._running}"
        )
    for entry in entries.exclude(account_id=F("wallet__account_id")).order_by("id")[
        :REPORT_AT_MOST
    ]:
        problems.append(f"ledger entry #{entry.pk}: account is not its wallet's account")

    charged = events.annotate(_charged=-_total(LedgerEntry, "amount", usage_event=OuterRef("pk")))
    for event in charged.filter(_differs("credits", "_charged")):
        problems.append(
            f"usage event #{event.pk} ({event.account}): credits {event.credits} != charged "
            f"{event._charged}"
        )
    return problems
