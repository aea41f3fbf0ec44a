from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from apps.accounts.models import Account, Subscription
from apps.periods.services import put_account_on_plan
from tests.factories import AccountFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("external_id", ["a", "user_42", "org:acme@eu-1.prod", "x" * 255])
def test_external_id_accepts_letters_digits_and_separators(external_id):
    Account(external_id=external_id).full_clean()


@pytest.mark.parametrize("external_id", ["", "has space", "slash/y", "x" * 256, "é"])
def test_external_id_rejects_anything_else(external_id):
    with pytest.raises(ValidationError):
        Account(external_id=external_id).full_clean()


def test_external_id_is_unique():
    AccountFactory(external_id="acme")
    with pytest.raises(IntegrityError):
        AccountFactory(external_id="acme")


def test_an_account_has_at_most_one_live_subscription():
    subscription = SubscriptionFactory()
    with pytest.raises(IntegrityError):
        SubscriptionFactory(account=subscription.account)


def test_canceled_subscriptions_stay_as_history_beside_the_live_one():
    subscription = SubscriptionFactory(status=Subscription.Status.CANCELED)
    SubscriptionFactory(account=subscription.account)
    assert subscription.account.subscriptions.count() == 2


def test_period_must_end_after_it_starts():
    subscription = SubscriptionFactory.build()
    subscription.current_period_end = subscription.current_period_start - timedelta(seconds=1)
    subscription.account.save()
    subscription.plan.save()
    subscription.account_id, subscription.plan_id = subscription.account.pk, subscription.plan.pk
    with pytest.raises(IntegrityError):
        subscription.save()


def test_putting_an_account_on_a_plan_ends_the_live_subscription():
    account = AccountFactory()
    first = put_account_on_plan(account=account, plan=PlanFactory())
    second = put_account_on_plan(account=account, plan=PlanFactory(billing_interval="year"))
    first.refresh_from_db()
    assert first.status == Subscription.Status.CANCELED
    assert second.status == Subscription.Status.ACTIVE
    assert (second.current_period_end - second.current_period_start).days in (365, 366)
