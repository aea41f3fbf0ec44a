"""Plan changes and the lazy close: what a finance person expects (docs/periods.md)."""

from datetime import timedelta

from apps.accounts.models import Subscription
from apps.periods.services import (
    cancel_at_period_end,
    change_plan_at_period_end,
    put_account_on_plan,
    renew_due_subscriptions,
    resume_subscription,
)
from apps.wallets.models import CreditGrant
from apps.wallets.services import expire_grants
from tests.ledger import assert_ledger_sound, give, wallet_of

from .conftest import FEB_28, JAN_31, MAR_31, D, entries, grants, monthly_plan, spend, subscribed

PLAN_PERIOD = CreditGrant.Source.PLAN_PERIOD
ROLLOVER = CreditGrant.Source.ROLLOVER


def test_an_upgrade_mid_period_closes_the_old_period_now_and_starts_the_new_plan(calendar):
    account, old = subscribed(monthly_plan(credits=1000, percent=50, code="starter"))
    spend(account, 600)
    upgrade_at = JAN_31 + timedelta(days=10)
    calendar.move_to(upgrade_at, tick=False)
    new = put_account_on_plan(account=account, plan=monthly_plan(credits=5000, code="pro"))
    old.refresh_from_db()
    assert (old.status, old.current_period_end) == ("canceled", upgrade_at)
    assert (new.current_period_start, new.billing_anchor) == (upgrade_at, upgrade_at)
    # The old plan's 400 left: 200 roll over by its terms, 200 expire; the new plan's
    # credits come in full, for a period counted from the upgrade.
    assert [g.amount for g in grants(account, ROLLOVER)] == [D(200)]
    assert [-e.amount for e in entries(account, "expire")] == [D(200)]
    assert wallet_of(account).balance == D(5200)
    assert_ledger_sound()


def test_a_change_at_period_end_takes_over_at_renewal(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, code="pro"))
    starter = monthly_plan(credits=100, code="starter")
    change_plan_at_period_end(account=account, plan=starter)
    assert len(grants(account)) == 1  # nothing changes before the period ends
    renew_due_subscriptions(now=FEB_28)
    subscription.refresh_from_db()
    assert (subscription.plan, subscription.scheduled_plan) == (starter, None)
    assert grants(account, PLAN_PERIOD)[-1].amount == D(100)
    assert_ledger_sound()


def test_choosing_the_current_plan_again_cancels_a_scheduled_change(calendar):
    plan = monthly_plan(credits=1000)
    account, subscription = subscribed(plan)
    change_plan_at_period_end(account=account, plan=monthly_plan(credits=10))
    change_plan_at_period_end(account=account, plan=plan)
    subscription.refresh_from_db()
    assert subscription.scheduled_plan is None


def test_cancel_at_period_end_lets_plan_credits_lapse_and_keeps_purchased_ones(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, percent=100))
    pack = give(account, 50, source=CreditGrant.Source.PURCHASE)
    spend(account, 100)
    cancel_at_period_end(account=account)
    counts = renew_due_subscriptions(now=FEB_28)
    subscription.refresh_from_db()
    assert (counts.canceled, subscription.status) == (1, "canceled")
    assert grants(account, ROLLOVER) == []  # a plan that ends rolls nothing over
    pack.refresh_from_db()
    assert wallet_of(account).balance == pack.remaining == D(50)
    assert renew_due_subscriptions(now=MAR_31).renewed == 0
    assert_ledger_sound()


def test_resuming_restores_the_rollover(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, percent=100))
    cancel_at_period_end(account=account)
    resume_subscription(account=account)
    renew_due_subscriptions(now=FEB_28)
    assert [g.amount for g in grants(account, ROLLOVER)] == [D(1000)]
    assert_ledger_sound()


def test_a_pack_expires_on_its_date(calendar):
    account, _ = subscribed(monthly_plan(credits=10))
    pack = give(account, 50, days=5, source=CreditGrant.Source.PURCHASE)
    counts = expire_grants(now=JAN_31 + timedelta(days=6))
    pack.refresh_from_db()
    assert (pack.remaining, counts.expired, counts.rolled_over) == (0, D(50), 0)
    assert wallet_of(account).balance == D(10)
    assert_ledger_sound()


def test_a_consume_after_the_period_ended_closes_it_exactly_as_the_job_would(
    calendar, consume_path
):
    """The database functions hand this consume to Python, which rolls over first."""
    lazy, _ = subscribed(monthly_plan(credits=1000, percent=50), external_id="lazy")
    by_job, _ = subscribed(monthly_plan(credits=1000, percent=50), external_id="by_job")
    for account in (lazy, by_job):
        spend(account, 600)
    calendar.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    charged = spend(lazy, 150)  # before the renewal job: the rollover (200) is spendable
    assert charged.usage_event.balance_after == D(50)
    expire_grants()
    assert [g.remaining for g in grants(lazy, ROLLOVER)] == [D(50)]
    assert [g.amount for g in grants(by_job, ROLLOVER)] == [D(200)]
    renew_due_subscriptions()
    assert wallet_of(lazy).balance == D(1050)
    assert wallet_of(by_job).balance == D(1200)
    assert_ledger_sound()


def test_a_subscription_row_is_history(calendar):
    _, subscription = subscribed(monthly_plan())
    assert Subscription.history.filter(id=subscription.pk).count() == 1


def test_finance_cancels_at_period_end_from_the_admin_and_support_cannot(calendar, client):
    from tests.factories import UserFactory

    account, subscription = subscribed(monthly_plan(credits=100, percent=50))
    changelist = "/admin/accounts/subscription/"
    action = {"action": "cancel_at_period_end", "_selected_action": [subscription.pk]}
    client.force_login(UserFactory(groups=["Support"]))
    client.post(changelist, action)
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end
    client.force_login(UserFactory(groups=["Finance"]))
    response = client.post(changelist, action, follow=True)
    assert "1 subscription(s) will end at their period end." in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end
    assert subscription.history.first().history_user.groups.get().name == "Finance"


def test_a_past_due_subscription_changing_plan_gets_no_unpaid_periods(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, percent=100, after=None))
    Subscription.objects.filter(pk=subscription.pk).update(status="past_due")
    calendar.move_to(MAR_31 + timedelta(days=1), tick=False)
    put_account_on_plan(account=account, plan=monthly_plan(credits=10, code="small"))
    plan_grants = grants(account, PLAN_PERIOD)
    assert [g.amount for g in plan_grants] == [D(1000), D(10)]  # the paid one, the new one
    assert [g.amount for g in grants(account, ROLLOVER)] == [D(1000)]  # its own rollover
    assert_ledger_sound()


def test_scheduling_a_change_after_the_period_ended_renews_the_old_plan_first(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, code="big"))
    calendar.move_to(FEB_28 + timedelta(minutes=5), tick=False)
    change_plan_at_period_end(account=account, plan=monthly_plan(credits=10, code="tiny"))
    assert [g.amount for g in grants(account, PLAN_PERIOD)] == [D(1000), D(1000)]
    renew_due_subscriptions(now=MAR_31)
    assert grants(account, PLAN_PERIOD)[-1].amount == D(10)
    assert_ledger_sound()


def test_a_change_at_period_end_keeps_month_ends_from_drifting(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, code="big"))
    change_plan_at_period_end(account=account, plan=monthly_plan(credits=10, code="tiny"))
    renew_due_subscriptions(now=FEB_28)
    subscription.refresh_from_db()
    assert subscription.current_period_end == MAR_31  # not Mar 28: the anchor stays Jan 31


def test_subscriptions_cannot_be_saved_or_reverted_by_hand_in_the_admin(calendar, client):
    from django.contrib.auth import get_user_model

    _, subscription = subscribed(monthly_plan(credits=100))
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    page = f"/admin/accounts/subscription/{subscription.pk}/change/"
    assert client.post(page, {}).status_code == 403
    version = subscription.history.last().history_id
    revert = f"/admin/accounts/subscription/{subscription.pk}/history/{version}/"
    assert client.post(revert, {}).status_code == 403
