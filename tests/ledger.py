"""Helpers for ledger tests: a priced world and the invariant check."""

import queue
import threading
from datetime import timedelta
from decimal import Decimal

from django.db import connections
from django.utils import timezone

from apps.periods.services import put_account_on_plan
from apps.wallets.models import CreditGrant, Wallet
from apps.wallets.selectors import ledger_violations
from apps.wallets.services import grant_credits
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanFactory,
    PlanFeatureFactory,
)

D = Decimal


def assert_ledger_sound(account=None):
    problems = ledger_violations(account=account)
    assert problems == [], problems


def give(account, amount, *, credit_type=None, days=None, priority=None, **kwargs):
    credit_type = credit_type or CreditTypeFactory()
    grant, _ = grant_credits(
        account=account,
        credit_type=credit_type,
        amount=D(str(amount)),
        source=kwargs.pop("source", CreditGrant.Source.PROMO),
        expires_at=timezone.now() + timedelta(days=days) if days is not None else None,
        priority=priority,
        **kwargs,
    )
    return grant


def wallet_of(account, credit_type=None):
    credit_type = credit_type or CreditTypeFactory()
    return Wallet.objects.get(account=account, credit_type=credit_type)


def priced_account(*, credits=None, credits_per_unit=1, feature_code="api_call", plan=None,
                   plan_feature=None, **account_fields):  # fmt: skip
    """An account, a metered feature, and optionally a plan and a first grant."""
    account = AccountFactory(**account_fields)
    feature = FeatureFactory(code=feature_code, credits_per_unit=D(str(credits_per_unit)))
    if plan is not None:
        if plan is True:
            plan = PlanFactory()
        PlanFeatureFactory(plan=plan, feature=feature, **(plan_feature or {}))
        put_account_on_plan(account=account, plan=plan)
    if credits is not None:
        give(account, credits)
    return account, feature


def race(calls, *, workers=16):
    """Run the callables on `workers` threads (each with its own database connection),
    released together; return their results or the exceptions they raised, in order."""
    start, results = threading.Event(), [None] * len(calls)
    pending = queue.SimpleQueue()
    for index, call in enumerate(calls):
        pending.put((index, call))

    def worker():
        start.wait(timeout=10)
        try:
            while True:
                try:
                    index, call = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[index] = call()
                except Exception as exc:  # noqa: BLE001 - the test inspects each outcome
                    results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a racing call hung (deadlock?)"
    return results
