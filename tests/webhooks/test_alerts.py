"""balance.low and balance.depleted fire once per crossing, not once per consume."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from apps.webhooks.alerts import ALERTS_LOCK, check_balance_alerts
from apps.webhooks.models import BalanceAlert, WebhookEndpoint, WebhookEvent
from tests.ledger import give, priced_account
from tests.periods.conftest import monthly_plan, spend, subscribed

D = Decimal
pytestmark = pytest.mark.django_db


def fired():
    return [
        (e.type, e.data["available"]) for e in WebhookEvent.objects.order_by("created_at", "pk")
    ]


def watched(account):
    WebhookEndpoint.objects.create(
        account=account,
        url="http://127.0.0.1:9/",
        event_types=["balance.low", "balance.depleted"],
    )


def test_low_fires_once_when_the_threshold_is_crossed_then_again_only_after_a_recovery(db):
    account, _ = priced_account(credits=150, low_balance_threshold=D(100))
    watched(account)
    check_balance_alerts()
    assert fired() == []
    spend(account, 60)  # 90: below the threshold
    check_balance_alerts()
    spend(account, 40)  # 50: still below: no new crossing
    check_balance_alerts()
    assert fired() == [("balance.low", "90")]
    give(account, 500)  # 550: above again, re-armed
    check_balance_alerts()
    assert not BalanceAlert.objects.exists()
    spend(account, 470)  # 80: a new crossing
    check_balance_alerts()
    assert fired() == [("balance.low", "90"), ("balance.low", "80")]


def test_depleted_fires_when_available_reaches_zero(db):
    account, _ = priced_account(credits=150, low_balance_threshold=D(100))
    watched(account)
    spend(account, 50)
    check_balance_alerts()
    spend(account, 100)
    check_balance_alerts()
    check_balance_alerts()
    assert fired() == [("balance.low", "100"), ("balance.depleted", "0")]
    give(account, 20)  # back to low, from below: no line crossed downwards
    check_balance_alerts()
    assert len(fired()) == 2
    assert BalanceAlert.objects.get().level == "low"


def test_the_plan_threshold_applies_when_the_account_has_none(calendar):
    plan = monthly_plan(credits=1000)
    plan.low_balance_threshold = D(200)
    plan.save()
    account, _ = subscribed(plan)
    watched(account)
    spend(account, 850)
    counts = check_balance_alerts()
    assert counts.alerts == 1
    assert fired() == [("balance.low", "150")]


def test_without_a_threshold_only_depleted_fires(db):
    account, _ = priced_account(credits=10)
    watched(account)
    spend(account, 10)
    check_balance_alerts()
    assert fired() == [("balance.depleted", "0")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_run_that_finds_another_at_work_returns_and_the_lock_ends_with_that_transaction():
    account, _ = priced_account(credits=150, low_balance_threshold=D(100))
    watched(account)
    spend(account, 60)
    holding, done = threading.Event(), threading.Event()

    def another_copy():  # holds the job's lock the way a chunk does: for its transaction
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [ALERTS_LOCK])
            holding.set()
            done.wait(10)
        connection.close()

    other = threading.Thread(target=another_copy)
    other.start()
    assert holding.wait(10)
    assert check_balance_alerts().chunks == 0 and fired() == []
    done.set()
    other.join()
    check_balance_alerts()  # the lock went with the other transaction: nothing held over
    assert fired() == [("balance.low", "90")]
