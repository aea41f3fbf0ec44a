"""A priced world on a fixed calendar for the period tests."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.catalog.models import Feature
from apps.periods.services import put_account_on_plan
from apps.usage.services import consume
from apps.wallets.models import CreditGrant, LedgerEntry
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)
from tests.ledger import give

D = Decimal
JAN_31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
FEB_28 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
MAR_31 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
APR_30 = datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
MAY_31 = datetime(2026, 5, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def calendar(db, time_machine):
    """Time stands still at JAN_31 until a test moves it; an `api_call` feature costs 1."""
    time_machine.move_to(JAN_31, tick=False)
    FeatureFactory(code="api_call", credit_type=CreditTypeFactory())
    return time_machine


def monthly_plan(*, credits=1000, percent=0, cap=None, after=1, code=None, price="30",
                 **features):  # fmt: skip
    """A monthly plan granting `credits` that include the `api_call` feature."""
    plan = PlanFactory(
        billing_interval="month",
        price=D(price),
        rollover_percent=D(percent),
        rollover_cap=None if cap is None else D(cap),
        rollover_expires_after_periods=after,
        **({"code": code} if code else {}),
    )
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(), credits_per_period=D(credits))
    PlanFeatureFactory(plan=plan, feature=Feature.objects.get(code="api_call"), **features)
    return plan


def subscribed(plan, **account_fields):
    account = AccountFactory(**account_fields)
    return account, put_account_on_plan(account=account, plan=plan)


def spend(account, credits):
    return consume(account=account, feature="api_call", quantity=D(credits))


def grants(account, source=None):
    found = CreditGrant.objects.filter(account=account).order_by("id")
    if source:
        found = found.filter(source=source)
    return list(found)


def entries(account, kind=None):
    found = LedgerEntry.objects.filter(account=account).order_by("id")
    if kind:
        found = found.filter(kind=kind)
    return list(found)


def ledger_picture(prefix=""):
    """The ledger of the accounts whose external id starts with `prefix`, in words that do
    not depend on ids, dates or which run wrote it: two worlds built alike compare equal."""
    picture = []
    found = LedgerEntry.objects.filter(account__external_id__startswith=prefix)
    for entry in found.select_related("account", "grant").order_by("id"):
        grant = entry.grant
        picture.append(
            (
                entry.account.external_id.removeprefix(prefix),
                entry.kind,
                entry.amount,
                entry.balance_after,
                grant and (grant.source, grant.amount, grant.remaining),
            )
        )
    return sorted(picture, key=repr)


def world(prefix, *, accounts=6, used=300, shift=timedelta(0), calendar=None):
    """`accounts` subscribers of one plan (50 % rollover, cap 150), each with a pack that
    expires with the period; the same world under another prefix compares equal."""
    if calendar is not None:
        calendar.move_to(JAN_31 + shift, tick=False)
    plan = monthly_plan(credits=1000, percent=50, cap=150, code=f"{prefix}plan")
    for i in range(accounts):
        account, _ = subscribed(plan, external_id=f"{prefix}{i}")
        give(account, 40 + i, days=20, source=CreditGrant.Source.PURCHASE)
        spend(account, used + i)


class Kill(Exception):
    pass


def killed_after(chunks):
    def on_chunk(counts):
        if counts.chunks == chunks:
            raise Kill

    return on_chunk
