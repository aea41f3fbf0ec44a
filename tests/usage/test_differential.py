"""Differential: the three consume engines must agree exactly (issue 15). The same random
script of grants, consumes, checks, batches, reservations, time passing, expiries, plan changes,
contracts and suspensions runs on three fresh accounts, step by step:

- python: the reference engine (CONSUME_FAST_PATH off; the only one that closes grants);
- single: the fast path, each consume a single consume, each batch a batch;
- batch: the fast path, each consume sent as a batch too, so that it reaches the set-based
  batch function (with a bystander's inert event: a one-event batch is a single consume).

A check is answered by the Python rules on the python engine and by the check function on the
others. Each step's answer (outcome, replay, error code, message and details) and, at the end, every
usage event, ledger entry, grant, reservation, wallet and usage counter must be the same,
ids compared by their order within the account."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from apps.accounts.models import Account, Subscription
from apps.accounts.services import set_account_status
from apps.catalog.contracts import put_contract, remove_contract
from apps.core.decimals import format_decimal
from apps.core.errors import DomainError
from apps.periods.services import end_subscription, locked_subscription, put_account_on_plan
from apps.usage.models import UsageCounter, UsageEvent
from apps.usage.selectors import check
from apps.usage.services import (
    ConsumeRequest,
    commit_reservation,
    consume,
    consume_batch,
    release_expired_reservations,
    release_reservation,
    reserve,
)
from apps.wallets.models import CreditGrant, LedgerEntry, Reservation, Wallet
from apps.wallets.services import expire_grants, grant_credits
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)
from tests.ledger import D

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

START = datetime(2031, 1, 15, 9, 30, tzinfo=UTC)
ENGINES = (("python", False, False), ("single", True, False), ("batch", True, True))


# --- the catalog every script runs against ---------------------------------------------------


@pytest.fixture
def catalog():
    """Two credit types; metered features at their own price, at a plan's price, under a
    quota, free, of the second credit type; an on/off feature; one a plan lists disabled; an
    inactive one. Plans: "basic" (blocks at zero, grants 20 a period, rolls half over), its
    current version "basic_v2" (other costs, quota and allowance; "basic" is its grandfathered
    version 1) and "overage" (grants nothing, lets the balance go 15 below zero)."""
    credits, gold = CreditTypeFactory(), CreditTypeFactory(code="gold", name="Gold")
    features = {
        "metered": FeatureFactory(code="metered", credit_type=credits),
        "priced": FeatureFactory(code="priced", credit_type=credits, credits_per_unit=D("2.5")),
        "quota": FeatureFactory(code="quota", credit_type=credits),
        "free": FeatureFactory(code="free", credit_type=credits, credits_per_unit=D(0)),
        "gold_use": FeatureFactory(code="gold_use", credit_type=gold, credits_per_unit=D(2)),
        "sso": FeatureFactory(code="sso", kind="boolean", credit_type=None),
        "disabled": FeatureFactory(code="disabled", credit_type=credits),
        "retired": FeatureFactory(code="retired", credit_type=credits, active=False),
    }
    basic = PlanFactory(code="basic", rollover_percent=D(50), current=False)
    PlanAllowanceFactory(plan=basic, credit_type=credits, credits_per_period=D(20))
    basic_v2 = PlanFactory(code="basic", version=2, rollover_percent=D(25))
    PlanAllowanceFactory(plan=basic_v2, credit_type=credits, credits_per_period=D(30))
    overage = PlanFactory(code="overage", overage_policy="allow", overage_limit=D(15))
    on_plans = {
        basic: {"metered": {}, "priced": {"credits_per_unit": D("0.5")}, "free": {},
                "quota": {"limit_per_period": D(5)}, "gold_use": {}, "sso": {},
                "disabled": {"enabled": False}},
        basic_v2: {"metered": {}, "priced": {"credits_per_unit": D("1.5")}, "free": {},
                   "quota": {"limit_per_period": D(3)}, "sso": {}, "disabled": {}},
        overage: {"metered": {}, "priced": {"credits_per_unit": D(3)}, "free": {},
                  "quota": {"limit_per_period": D("2.5")}},
    }  # fmt: skip
    for plan, terms in on_plans.items():
        for code, extra in terms.items():
            PlanFeatureFactory(plan=plan, feature=features[code], **extra)
    return {"credits": credits, "gold": gold, "basic": basic, "basic_v2": basic_v2,
            "overage": overage}  # fmt: skip


# --- a script's steps ----------------------------------------------------------------------


@dataclass
class World:
    """What every engine shares: the catalog, the clock, an account that only ever sends the
    inert event."""

    catalog: dict
    clock: object
    bystander: Account


@dataclass
class Engine:
    """One engine's account, and the holds it made (a commit or release picks one by index)."""

    name: str
    fast_path: bool
    consume_as_batch: bool
    account: Account
    reservations: list = field(default_factory=list)


@dataclass(frozen=True)
class Grant:
    credit_type: str
    amount: Decimal
    priority: int
    days: int | None
    source: str
    reference: str | None

    def run(self, world, engine):
        expires_at = timezone.now() + timedelta(days=self.days) if self.days else None
        grant, created = grant_credits(
            account=engine.account, credit_type=world.catalog[self.credit_type],
            amount=self.amount, source=self.source, priority=self.priority,
            expires_at=expires_at, reference=self.reference,
        )  # fmt: skip
        return ("granted", Ref("grant", grant.pk), created)


@dataclass(frozen=True)
class Event:
    feature: str
    quantity: Decimal
    key: str | None = None
    metadata: dict | None = None
    an_hour_ago: bool = False

    def request(self, account):
        return ConsumeRequest.build(
            account=account, feature=self.feature, quantity=self.quantity,
            idempotency_key=self.key, metadata=self.metadata,
            occurred_at=timezone.now() - timedelta(hours=1) if self.an_hour_ago else None,
        )  # fmt: skip


@dataclass(frozen=True)
class Consume(Event):
    def run(self, world, engine):
        request = self.request(engine.account)
        if engine.consume_as_batch:
            inert = ConsumeRequest.build(account=world.bystander, feature="nope", quantity=1)
            outcome, bystander = consume_batch(requests=[request, inert])
            assert bystander.error.code == "feature_not_found"
            return charged(outcome)
        outcome = consume(
            account=engine.account, feature=request.feature, quantity=request.quantity,
            idempotency_key=request.idempotency_key, metadata=request.metadata,
            occurred_at=request.occurred_at,
        )  # fmt: skip
        return charged(outcome)


@dataclass(frozen=True)
class Check:
    """Would a consume succeed? The python engine answers with the Python rules, the others
    with the check function."""

    feature: str
    quantity: Decimal

    def run(self, world, engine):
        answer = check(account=engine.account, feature=self.feature, quantity=self.quantity)
        return ("checked", answer.allowed, answer.reason, answer.credits_required,
                answer.credit_type, answer.available, answer.details)  # fmt: skip


@dataclass(frozen=True)
class Batch:
    events: tuple

    def run(self, world, engine):
        outcomes = consume_batch(requests=[e.request(engine.account) for e in self.events])
        return tuple(charged(o) for o in outcomes)


@dataclass(frozen=True)
class Reserve:
    feature: str
    quantity: Decimal
    ttl_seconds: int
    key: str | None

    def run(self, world, engine):
        reservation, replayed = reserve(
            account=engine.account, feature=self.feature, quantity=self.quantity,
            ttl_seconds=self.ttl_seconds, idempotency_key=self.key,
        )  # fmt: skip
        engine.reservations.append(reservation.pk)
        return ("reserved", Ref("reservation", reservation.pk), replayed,
                reservation.credits_held, reservation.expires_at)  # fmt: skip


@dataclass(frozen=True)
class Commit:
    which: int
    quantity: Decimal

    def run(self, world, engine):
        if not engine.reservations:
            return None
        reservation, event = commit_reservation(
            reservation_id=engine.reservations[self.which % len(engine.reservations)],
            quantity=self.quantity,
        )
        return ("committed", Ref("reservation", reservation.pk), Ref("event", event.pk),
                event.credits, event.balance_after, event.available_after)  # fmt: skip


@dataclass(frozen=True)
class Release:
    which: int

    def run(self, world, engine):
        if not engine.reservations:
            return None
        pk = engine.reservations[self.which % len(engine.reservations)]
        return ("released", Ref("reservation", release_reservation(reservation_id=pk).pk))


@dataclass(frozen=True)
class ChangePlan:
    plan: str | None

    def run(self, world, engine):
        if self.plan is not None:
            put_account_on_plan(account=engine.account, plan=world.catalog[self.plan])
            return ("on plan", self.plan)
        with transaction.atomic():
            live = locked_subscription(
                account=engine.account, status__in=Subscription.LIVE_STATUSES
            )
            if live is not None:
                end_subscription(subscription=live)
        return ("no plan", live is not None)


# Contracts a script may sign: each overrides some of the plan's terms (or, without a plan,
# the features' own), a feature at a time and the overdraft.
CONTRACTS = {
    "cheaper": {"features": [{"feature": "metered", "credits_per_unit": "0.25"},
                             {"feature": "quota", "limit_per_period": "1"}]},
    "unlocked": {"features": [{"feature": "disabled", "enabled": True},
                              {"feature": "quota", "limit_per_period": None},
                              {"feature": "sso", "enabled": False},
                              {"feature": "gold_use", "enabled": False}],
                 "overage": {"policy": "allow", "limit": "7"}},
    "no overdraft": {"overage": {"policy": "block", "limit": "0"},
                     "features": [{"feature": "priced", "credits_per_unit": "4"}]},
}  # fmt: skip


@dataclass(frozen=True)
class SignContract:
    """The account's contract, replaced: it starts in `starts_in` hours (0: now) and ends
    `hours` after that (None: never)."""

    terms: str
    hours: int | None
    starts_in: int = 0

    def run(self, world, engine):
        starts_at = timezone.now() + timedelta(hours=self.starts_in)
        raw = {**CONTRACTS[self.terms], "starts_at": starts_at.isoformat()}
        if self.hours is not None:
            raw["ends_at"] = (starts_at + timedelta(hours=self.hours)).isoformat()
        put_contract(account=engine.account, raw=raw)
        return ("contract", self.terms, self.hours, self.starts_in)


@dataclass(frozen=True)
class EndContract:
    def run(self, world, engine):
        remove_contract(account=engine.account)
        return ("contract ended",)


@dataclass(frozen=True)
class Suspend:
    suspended: bool

    def run(self, world, engine):
        status = Account.Status.SUSPENDED if self.suspended else Account.Status.ACTIVE
        return ("status", set_account_status(account=engine.account, status=status))


@dataclass(frozen=True)
class TimePasses:
    """The clock moves on for every account at once."""

    hours: int

    def run_once(self, world):
        world.clock.shift(timedelta(hours=self.hours))


@dataclass(frozen=True)
class ExpiryJobs:
    """The expiry jobs run, for every account at once."""

    def run_once(self, world):
        expire_grants()
        release_expired_reservations()


# --- generating scripts ----------------------------------------------------------------------

FEATURES = ["metered", "metered", "priced", "quota", "quota", "free", "gold_use", "sso",
            "disabled", "retired", "nope"]  # fmt: skip
quantities = st.one_of(
    st.integers(1, 12).map(D),
    st.sampled_from([D("0.5"), D("2.25"), D("0.000001"), D("0.000003"), D(40), D(1000)]),
    st.decimals(min_value=D("0.000001"), max_value=D(30), places=6),
)
events = st.builds(
    Event,
    # Weighted towards what charges: the refusals need fewer tries to be reached.
    feature=st.sampled_from(FEATURES),
    quantity=quantities,
    key=st.none() | st.sampled_from(["k1", "k2", "k3"]),
    metadata=st.sampled_from([None, {"job": 1}]),
    an_hour_ago=st.booleans(),
)


@st.composite
def batches(draw):
    """Two to six events; sometimes one of them again (the same key and body: a replay)."""
    found = draw(st.lists(events, min_size=2, max_size=5))
    if draw(st.booleans()):
        found.insert(draw(st.integers(1, len(found))), draw(st.sampled_from(found)))
    return Batch(tuple(found))


grants = st.builds(
    Grant,
    credit_type=st.sampled_from(["credits", "credits", "gold"]),
    amount=quantities,
    priority=st.sampled_from([100, 10]),
    days=st.sampled_from([1, None, 2, 30]),
    source=st.sampled_from(["promo", "manual", "trial", "purchase"]),
    reference=st.none() | st.sampled_from(["ref-1", "ref-2"]),
)
consumes = events.map(lambda e: Consume(**vars(e)))
checks = st.builds(Check, feature=st.sampled_from(FEATURES), quantity=quantities)
plans = st.builds(ChangePlan, plan=st.sampled_from(["basic", "basic_v2", "overage", None]))
contracts = st.one_of(
    st.builds(SignContract, terms=st.sampled_from(sorted(CONTRACTS)),
              hours=st.sampled_from([None, 2, 30]), starts_in=st.sampled_from([0, 0, 20])),
    st.just(EndContract()),
)  # fmt: skip
steps = st.one_of(
    grants,
    grants,
    consumes,
    consumes,
    consumes,
    consumes,
    checks,
    checks,
    batches(),
    st.builds(
        Reserve,
        feature=st.sampled_from(["metered", "priced", "quota", "gold_use", "nope"]),
        quantity=st.integers(1, 5).map(D),
        ttl_seconds=st.sampled_from([60, 7200]),
        key=st.none() | st.just("hold-1"),
    ),
    st.builds(Commit, which=st.integers(0, 3), quantity=st.integers(1, 8).map(D) | quantities),
    st.builds(Release, which=st.integers(0, 3)),
    st.builds(TimePasses, hours=st.sampled_from([25, 1, 24 * 3, 24 * 40])),
    st.just(ExpiryJobs()),
    plans,
    contracts,
    st.builds(Suspend, suspended=st.sampled_from([True, False, False])),
)


@st.composite
def scripts(draw):
    """A plan (or none) and grants, then steps; sometimes an earlier consume or batch again."""
    script = [draw(plans), *draw(st.lists(grants, min_size=1, max_size=3))]
    script += draw(st.lists(steps, min_size=3, max_size=18))
    for _ in range(draw(st.integers(0, 2))):
        earlier = [s for s in script if isinstance(s, Consume | Batch)]
        if earlier:
            script.insert(draw(st.integers(1, len(script))), draw(st.sampled_from(earlier)))
    return script


# --- running and comparing -------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A row's id, compared by its order among the account's rows of that table."""

    table: str
    pk: int | None


def charged(outcome):
    """One consume's Outcome as comparable values."""
    if outcome.error is not None:
        return refused(outcome.error)
    e = outcome.usage_event
    return ("charged", outcome.replayed, Ref("event", e.pk), e.feature, e.credit_type,
            e.quantity, e.credits_per_unit, e.credits, e.balance_after, e.available_after,
            e.metadata, e.occurred_at, e.created_at, e.idempotency_key)  # fmt: skip


def refused(error):
    return ("refused", type(error).__name__, error.code, error.message, error.details)


def run_step(step, world, engine):
    try:
        with override_settings(CONSUME_FAST_PATH=engine.fast_path):
            return step.run(world, engine)
    except DomainError as error:
        return refused(error)


def id_orders(account):
    def order(queryset):
        return {pk: n for n, pk in enumerate(queryset.order_by("pk").values_list("pk", flat=True))}

    return {
        "event": order(UsageEvent.objects.filter(account=account)),
        "grant": order(CreditGrant.objects.filter(account=account)),
        "reservation": order(Reservation.objects.filter(account=account)),
        "subscription": order(Subscription.objects.filter(account=account)),
    }


# Ids written into text: a rollover's reason, a period grant's reference, a refusal's message.
IDS_IN_TEXT = [
    (re.compile(r"(grant #)(\d+)"), "grant"),
    (re.compile(r"((?:period|overage):)(\d+)"), "subscription"),
    (re.compile(r"(Reservation )(\d+)"), "reservation"),
]


def normalised(value, orders):
    if isinstance(value, Ref):
        return None if value.pk is None else f"{value.table}#{orders[value.table][value.pk]}"
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return f"start+{value - START}"
    if isinstance(value, str):
        for pattern, table in IDS_IN_TEXT:
            value = pattern.sub(lambda m, t=table: f"{m[1]}{t}#{orders[t][int(m[2])]}", value)
        return value
    if isinstance(value, list | tuple):
        return tuple(normalised(v, orders) for v in value)
    if isinstance(value, dict):
        return {k: normalised(v, orders) for k, v in value.items()}
    return value


def tables(account):
    """Everything the engines wrote for `account`, row by row, ids as Refs."""
    entries = LedgerEntry.objects.filter(account=account).select_related("wallet__credit_type")
    grants = CreditGrant.objects.filter(account=account).select_related("wallet__credit_type")
    usage = UsageEvent.objects.filter(account=account).select_related("feature", "credit_type")
    return {
        "usage events": [
            (Ref("event", e.pk), e.feature.code, e.credit_type.code, e.quantity,
             e.credits_per_unit, e.credits, e.balance_after, e.available_after,
             e.idempotency_key, e.fingerprint, e.metadata, e.occurred_at, e.created_at)
            for e in usage.order_by("pk")
        ],
        "ledger entries": [
            (e.wallet.credit_type.code, e.kind, e.amount, e.balance_after, e.held_change,
             Ref("grant", e.grant_id), Ref("event", e.usage_event_id),
             Ref("reservation", e.reservation_id), e.reason, e.created_at)
            for e in entries.order_by("pk")
        ],
        "grants": [
            (Ref("grant", g.pk), g.wallet.credit_type.code, g.source, g.amount, g.remaining,
             g.debt_settled, g.priority, g.effective_at, g.expires_at, g.reference, g.reason,
             g.rollover_percent, g.rollover_cap, g.rollover_expires_at, g.voided_at)
            for g in grants.order_by("pk")
        ],
        "reservations": [
            (Ref("reservation", r.pk), r.feature.code, r.quantity, r.credits_per_unit,
             r.credits_held, r.status, r.expires_at, Ref("event", r.usage_event_id),
             r.closed_at)
            for r in Reservation.objects.filter(account=account).select_related("feature")
            .order_by("pk")
        ],
        "wallets": [
            (w.credit_type.code, w.balance, w.held, w.debt)
            for w in Wallet.objects.filter(account=account).select_related("credit_type")
            .order_by("credit_type__code")
        ],
        "usage counters": [
            (c.feature.code, c.period_start, c.used)
            for c in UsageCounter.objects.filter(account=account).select_related("feature")
            .order_by("feature__code", "period_start")
        ],
    }  # fmt: skip


def first_difference(rows):
    """Where the engines' rows part, with what each has there; None if they agree."""
    expected = rows["python"]
    for got in rows.values():
        if got != expected:
            pairs = enumerate(zip(expected, got, strict=False))
            at = next((i for i, (a, b) in pairs if a != b), min(len(expected), len(got)))
            return at, {n: (r[at] if at < len(r) else "(missing)") for n, r in rows.items()}
    return None


def assert_engines_agree(script, answers, engines):
    orders = {e.name: id_orders(e.account) for e in engines}
    steps = {e.name: normalised(answers[e.name], orders[e.name]) for e in engines}
    difference = first_difference(steps)
    if difference:
        at, seen = difference
        pytest.fail(f"{listed(script)}\nstep {at} was answered differently:\n{listed(seen)}")
    written = {e.name: tables(e.account) for e in engines}
    for table in written["python"]:
        rows = {name: normalised(found[table], orders[name]) for name, found in written.items()}
        difference = first_difference(rows)
        if difference:
            at, seen = difference
            pytest.fail(f"{listed(script)}\n{table}, row {at}, differ at the end:\n{listed(seen)}")


def listed(things):
    """A script (or the engines' answers) one item a line, for the failure message."""
    items = things.items() if isinstance(things, dict) else enumerate(things)
    return "\n".join(f"  {label}: {value}" for label, value in items)


@examples(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=scripts())
# Expiry not yet written: the fast path leaves closing to Python, for a consume and a batch.
@example(
    script=[
        ChangePlan("basic"),
        Grant("credits", D(5), 100, 1, "promo", None),
        Grant("credits", D(3), 10, None, "trial", None),
        TimePasses(48),
        Consume("metered", D(2)),
        Batch((Event("metered", D(1)), Event("priced", D(9)))),
        TimePasses(24 * 40),
        Consume("quota", D(1)),
        ExpiryJobs(),
    ]
)
# Overage: a wallet made for the overdraft, the limit, a grant paying the debt back first.
@example(
    script=[
        ChangePlan("overage"),
        Consume("metered", D(10)),
        Consume("free", D(2)),
        Batch((Event("priced", D(2)), Event("metered", D(6)), Event("metered", D(5)))),
        Grant("credits", D(12), 100, None, "purchase", "ref-1"),
        Grant("credits", D(12), 100, None, "purchase", "ref-1"),
        Consume("metered", D(3)),
        ChangePlan(None),
        Consume("metered", D(3)),
    ]
)
# Idempotency keys: replays and reuse, across calls and inside a batch.
@example(
    script=[
        ChangePlan(None),
        Grant("credits", D(50), 100, None, "promo", None),
        Consume("metered", D(2), "k1"),
        Consume("metered", D(2), "k1"),
        Consume("metered", D(3), "k1"),
        Batch(
            (
                Event("metered", D(1), "k2"),
                Event("metered", D(1), "k2"),
                Event("metered", D(2), "k2"),
                Event("metered", D(2), "k1"),
            )
        ),
    ]
)
# A contract: its prices, quota and overdraft on every engine; its end returns the plan's.
@example(
    script=[
        ChangePlan("basic"),
        Grant("credits", D(3), 100, None, "promo", None),
        SignContract("cheaper", 30),
        Consume("metered", D(4)),
        Batch((Event("quota", D(1)), Event("quota", D(1)), Event("metered", D(2)))),
        Reserve("quota", D(1), 60, None),
        SignContract("unlocked", 2),
        Consume("disabled", D(1)),
        Consume("sso", D(1)),
        Consume("gold_use", D(1)),
        Batch((Event("metered", D(20)), Event("quota", D(8)))),
        Consume("metered", D(1)),
        TimePasses(25),
        Consume("disabled", D(1)),
        Consume("quota", D(5)),
        SignContract("no overdraft", None, starts_in=20),
        Consume("priced", D(1)),
        TimePasses(24),
        Consume("priced", D(1)),
        EndContract(),
        EndContract(),
        Consume("priced", D(1)),
    ]
)
# Holds reduce what is available; quota; a suspended account.
@example(
    script=[
        ChangePlan("basic"),
        Reserve("metered", D(15), 7200, "hold-1"),
        Consume("metered", D(10)),
        Reserve("metered", D(15), 7200, "hold-1"),
        Commit(0, D(3)),
        Consume("quota", D(4)),
        Batch((Event("quota", D(1)), Event("quota", D("0.5")))),
        Suspend(True),
        Consume("metered", D(1)),
        Suspend(False),
        Reserve("metered", D(1), 60, None),
        TimePasses(1),
        Commit(1, D(1)),
        Release(1),
        ExpiryJobs(),
    ]
)
# A check answers as the consume would: every refusal, an expiry not yet written, a hold, the
# overdraft, an on/off feature, a cost a credit's places cannot hold.
@example(
    script=[
        ChangePlan("basic"),
        Grant("credits", D(4), 100, 1, "promo", None),
        Check("metered", D(30)),
        Check("quota", D(6)),
        Check("sso", D(1)),
        Check("disabled", D(1)),
        Check("nope", D(1)),
        Check("priced", D("0.000001")),
        Reserve("metered", D(5), 7200, None),
        Check("metered", D(20)),
        Consume("quota", D(4)),
        Check("quota", D(2)),
        TimePasses(48),
        Check("metered", D(1)),
        ChangePlan("overage"),
        Check("metered", D(10)),
        Check("metered", D(40)),
        Suspend(True),
        Check("metered", D(1)),
        Check("sso", D(1)),
    ]
)
def test_the_three_consume_engines_agree_on_any_script(catalog, script):
    with time_machine.travel(START, tick=False) as clock:
        world = World(catalog=catalog, clock=clock, bystander=AccountFactory())
        engines = [Engine(name, fast, as_batch, AccountFactory())
                   for name, fast, as_batch in ENGINES]  # fmt: skip
        answers = {e.name: [] for e in engines}
        for step in script:
            if hasattr(step, "run_once"):
                step.run_once(world)
            for engine in engines:
                answer = None if hasattr(step, "run_once") else run_step(step, world, engine)
                answers[engine.name].append(answer)
        assert_engines_agree(script, answers, engines)
