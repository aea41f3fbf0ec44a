"""Reads of the ledger, including the invariant checks behind `verify_ledger`."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import F, Max, OuterRef, Q, Subquery, Sum, Value, Window
from django.db.models.functions import Coalesce

from apps.core import clock
from apps.usage.models import UsageEvent
from apps.usage.selectors import CREDITS

from .models import CreditGrant, LedgerEntry, Reservation, Wallet, burn_down_ordering

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
    """Every broken invariant of docs/ledger.md, as readable lines; empty when the ledger is sound.

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
    chained = LedgerEntry.objects.all()  # whole wallets, whichever account an entry names
    if account is not None:
        entries = entries.filter(account=account)
        chained = chained.filter(wallet__account=account)
    chain = chained.annotate(
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


# --- what the API reads ---------------------------------------------------------------------


@dataclass(frozen=True)
class GrantView:
    id: int
    source: str
    remaining: Decimal
    expires_at: object
    priority: int


@dataclass(frozen=True)
class WalletView:
    credit_type: str
    balance: Decimal
    held: Decimal
    available: Decimal
    overdraft_limit: Decimal
    grants: list
    next_expiry: dict | None


def balances(*, account, overdraft_limit=Decimal(0), at=None):
    """The account's wallets now (spendable credits only: grants past their expiry are left
    out even before the expiry job writes them off), or as they stood at `at`, rebuilt from
    the ledger."""
    if at is not None:
        return _balances_at(account, overdraft_limit, at)
    now = clock.now()
    wallets = list(Wallet.objects.filter(account=account).select_related("credit_type"))
    live = CreditGrant.objects.filter(account=account, remaining__gt=0).order_by(
        "wallet_id", *burn_down_ordering()
    )
    grants_by_wallet = {}
    for grant in live:
        grants_by_wallet.setdefault(grant.wallet_id, []).append(grant)
    views = []
    for wallet in wallets:
        grants = grants_by_wallet.get(wallet.pk, [])
        expired = sum((g.remaining for g in grants if g.past_due(now)), Decimal(0))
        spendable = [g for g in grants if not g.past_due(now)]
        views.append(_wallet_view(wallet.credit_type.code, wallet.balance - expired, wallet.held,
                                  overdraft_limit, spendable))  # fmt: skip
    return views


@dataclass
class WalletAt:
    """A wallet as it stood at a moment, rebuilt from the ledger: its balance, held credits
    and debt, and its grants with credits left then (their `remaining` set to that), in
    burn-down order. Grants past their expiry at that moment are left out unless asked for
    (`with_past_due`: the simulator lets the engine close them, as a consume would)."""

    wallet_id: int
    account_id: int
    credit_type_id: int
    credit_type_code: str
    balance: Decimal
    held: Decimal
    debt: Decimal
    grants: list


def wallets_at(*, account_ids, at, with_past_due=False):
    """`{wallet_id: WalletAt}` for the accounts' wallets that had a ledger entry by `at`
    (included). A constant number of queries, whatever the number of accounts: the pricing
    simulator starts thousands of accounts from here."""
    entries = LedgerEntry.objects.filter(account_id__in=account_ids, created_at__lte=at)
    overage = Sum("amount", filter=Q(kind=LedgerEntry.Kind.OVERAGE), default=Decimal(0))
    closing = {
        row["wallet_id"]: row
        for row in entries.values("wallet_id")
        .annotate(last=Max("id"), held=Sum("held_change"), overage=overage)
        .order_by()
    }  # fmt: skip
    moved = {
        row["grant_id"]: row["moved"]
        for row in entries.filter(grant__isnull=False)
        .values("grant_id")
        .annotate(moved=Sum("amount"))
        .order_by()
    }
    grants_by_wallet, settled = {}, {}
    # By account, not by the grants' ids: those grow with the accounts' history.
    for grant in CreditGrant.objects.filter(account_id__in=account_ids).order_by(
        "wallet_id", *burn_down_ordering()
    ):
        if grant.pk not in moved:  # granted after `at`
            continue
        settled[grant.wallet_id] = settled.get(grant.wallet_id, 0) + grant.debt_settled
        grant.remaining = moved[grant.pk] - grant.debt_settled
        if grant.remaining > 0 and (with_past_due or not grant.past_due(at)):
            grants_by_wallet.setdefault(grant.wallet_id, []).append(grant)
    last = LedgerEntry.objects.filter(pk__in=[row["last"] for row in closing.values()])
    return {
        entry.wallet_id: WalletAt(
            wallet_id=entry.wallet_id,
            account_id=entry.account_id,
            credit_type_id=entry.wallet.credit_type_id,
            credit_type_code=entry.wallet.credit_type.code,
            balance=entry.balance_after,
            held=closing[entry.wallet_id]["held"],
            # What overage drew and grants have not paid back (docs/ledger.md, "Rules").
            debt=-closing[entry.wallet_id]["overage"] - settled.get(entry.wallet_id, 0),
            grants=grants_by_wallet.get(entry.wallet_id, []),
        )
        for entry in last.select_related("wallet__credit_type")
    }


def _balances_at(account, overdraft_limit, at):
    wallets = wallets_at(account_ids=[account.pk], at=at).values()
    return [
        _wallet_view(w.credit_type_code, w.balance, w.held, overdraft_limit, w.grants)
        for w in sorted(wallets, key=lambda w: w.credit_type_code)
    ]


def _wallet_view(credit_type, balance, held, overdraft_limit, grants):
    next_expiry = None
    expiring = [g for g in grants if g.expires_at is not None]
    if expiring:
        soonest = min(g.expires_at for g in expiring)
        next_expiry = {
            "at": soonest,
            "credits": sum((g.remaining for g in expiring if g.expires_at == soonest), Decimal(0)),
        }
    return WalletView(
        credit_type=credit_type,
        balance=balance,
        held=held,
        available=balance - held,
        overdraft_limit=overdraft_limit,
        grants=[GrantView(g.pk, g.source, g.remaining, g.expires_at, g.priority) for g in grants],
        next_expiry=next_expiry,
    )


def ledger_page(*, account, credit_type=None, kind=None, since=None, until=None, before_id=None,
                limit=50):  # fmt: skip
    """Newest first; `before_id` continues after the last entry of the previous page. Returns
    `(entries, more)`."""
    entries = LedgerEntry.objects.filter(account=account).select_related("wallet__credit_type")
    if credit_type:
        entries = entries.filter(wallet__credit_type__code=credit_type)
    if kind:
        entries = entries.filter(kind=kind)
    if since:
        entries = entries.filter(created_at__gte=since)
    if until:
        entries = entries.filter(created_at__lt=until)
    if before_id:
        entries = entries.filter(pk__lt=before_id)
    page = list(entries.order_by("-id")[: limit + 1])
    return page[:limit], len(page) > limit


LEDGER_FORBIDDEN = ("UPDATE", "DELETE", "TRUNCATE")
APP_NEEDS = ("SELECT", "INSERT")


def database_role_problems():
    """What lets the database role the app runs as rewrite the ledger (PostgreSQL): owning
    the ledger table (an owner may drop its triggers), being a superuser, holding UPDATE,
    DELETE or TRUNCATE on it, a missing or disabled append-only trigger; and what the app
    itself needs but lacks (SELECT, INSERT). `(role, [problem, …])`; no problems = safe."""
    table = LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, r.rolsuper, t.tableowner = current_user"
            " FROM pg_roles r, pg_tables t"
            " WHERE r.rolname = current_user AND t.tablename = %s"
            " AND t.schemaname = current_schema()",
            [table],
        )
        role, superuser, owner = cursor.fetchone()
        cursor.execute(
            "SELECT " + ", ".join(["has_table_privilege(%s, %s)"] * 5),
            [arg for p in (*LEDGER_FORBIDDEN, *APP_NEEDS) for arg in (table, p)],
        )
        held = dict(zip((*LEDGER_FORBIDDEN, *APP_NEEDS), cursor.fetchone(), strict=True))
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgenabled <> 'D'",
            [table],
        )
        enabled = {name for (name,) in cursor.fetchall()}
    problems = []
    if superuser:
        problems.append("is a superuser (bypasses every grant)")
    if owner:
        problems.append(f"owns {table} (an owner may drop its triggers)")
    if granted := [p for p in LEDGER_FORBIDDEN if held[p]]:
        problems.append(f"may {', '.join(granted)} {table}: revoke it")
    if missing := [p for p in APP_NEEDS if not held[p]]:
        problems.append(f"may not {', '.join(missing)} {table}: the app needs it")
    for trigger in LedgerEntry._meta.triggers:
        if trigger.get_pgid(LedgerEntry) not in enabled:
            problems.append(f"trigger {trigger.name} on {table} is missing or disabled: migrate")
    return role, problems


def ledger_entries(*, created_from=None, created_before=None, account=None, credit_type=None):
    """Ledger entries written in [created_from, created_before), of one account and/or one
    credit type when given (`export_ledger`)."""
    entries = LedgerEntry.objects.all()
    if created_from is not None:
        entries = entries.filter(created_at__gte=created_from)
    if created_before is not None:
        entries = entries.filter(created_at__lt=created_before)
    if account is not None:
        entries = entries.filter(account=account)
    if credit_type is not None:
        entries = entries.filter(wallet__credit_type=credit_type)
    return entries
