"""The data migrations that give grants made before cost bases their basis and plan
(apps/periods/migrations/0005, apps/billing/migrations/0008; docs/revenue.md, "Grants made
before cost bases"). django-test-migrations is not in requirements/dev.txt: the migration
functions run on rows made with the factories, with the current app registry."""

from importlib import import_module

from django.apps import apps

from apps.billing.models import Purchase
from apps.wallets.models import CreditGrant
from tests.factories import (
    AccountFactory,
    CreditPackFactory,
    CreditTypeFactory,
    PlanAllowanceFactory,
    PlanFactory,
    SubscriptionFactory,
)
from tests.ledger import give

from .conftest import D

periods_migration = import_module("apps.periods.migrations.0005_grant_cost_bases")
billing_migration = import_module("apps.billing.migrations.0008_purchase_grant_cost_bases")
Source = CreditGrant.Source
START = "2026-01-31T12:00:00Z"


def legacy(account, amount, source, *, code="credits", reference=None, unit_price="0"):
    """A grant as versions before cost bases left it: basis 0, no plan."""
    grant = give(account, amount, credit_type=CreditTypeFactory(code=code, name=code),
                 source=source, reference=reference, unit_price=D(unit_price))  # fmt: skip
    CreditGrant.objects.filter(pk=grant.pk).update(basis_amount=0, plan=None)
    return grant


def migrate():
    periods_migration.set_grant_cost_bases(apps, None)
    billing_migration.set_purchase_grant_cost_bases(apps, None)


def test_old_grants_get_their_basis_and_plan_by_the_rules(db):
    plan = PlanFactory(price=D("45.00"))
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(), credits_per_period=D(1000),
                         standalone_value=D("30"))  # fmt: skip
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(code="gpu", name="GPU"),
                         credits_per_period=D(100), standalone_value=D("15"))  # fmt: skip
    free_plan = PlanFactory(price=D("0"))
    PlanAllowanceFactory(plan=free_plan, credit_type=CreditTypeFactory())
    account = AccountFactory()
    subscription = SubscriptionFactory(account=account, plan=plan)
    free = SubscriptionFactory(account=AccountFactory(), plan=free_plan)
    period = f"period:{subscription.pk}:{START}:credits"
    pack = CreditPackFactory()
    grants = {
        "period": legacy(account, 1000, Source.PLAN_PERIOD, reference=period, unit_price="0.03"),
        "period_gpu": legacy(account, 100, Source.PLAN_PERIOD, code="gpu",
                             reference=f"period:{subscription.pk}:{START}:gpu"),
        "rolled": legacy(account, "333.5", Source.ROLLOVER, reference=f"{period}:rollover",
                         unit_price="0.03"),
        "rolled_twice": legacy(account, 100, Source.ROLLOVER,
                               reference=f"{period}:rollover:rollover"),
        "orphan_roll": legacy(account, 10, Source.ROLLOVER, unit_price="0.05",
                              reference=f"period:{subscription.pk}:2025-01-01T00:00:00Z:credits"
                              ":rollover"),
        "overage": legacy(account, 50, Source.OVERAGE, unit_price="0.0123",
                          reference=f"overage:{subscription.pk}:2026-02-28T12:00:00Z:credits"),
        "free_period": legacy(free.account, 1000, Source.PLAN_PERIOD,
                              reference=f"period:{free.pk}:{START}:credits"),
        "promo": legacy(account, 10, Source.PROMO),
        "sold": legacy(account, 1000, Source.PURCHASE, unit_price="0.0123"),
        "bought": legacy(account, 1000, Source.PURCHASE, unit_price="0.012"),
    }  # fmt: skip
    Purchase.objects.create(account=account, credit_pack=pack, credits=D(1000), price=D(12),
                            checkout_session_id="cs_1", amount_paid=D("11.99"),
                            grant=grants["bought"])  # fmt: skip

    migrate()

    found = {
        name: CreditGrant.objects.values_list("basis_amount", "plan_id").get(pk=grant.pk)
        for name, grant in grants.items()
    }
    assert found == {
        "period": (D("30.00"), plan.pk),  # its part of today's 45.00 by standalone values
        "period_gpu": (D("15.00"), plan.pk),
        # What its parent had not released, as a rollover does today: 30.00 − 20.00 (666.5 of
        # 1,000 credits out: 19.995, half up); then 10.00 − 7.00 (233.5 of 333.5 out: 7.0015).
        "rolled": (D("10.00"), plan.pk),
        "rolled_twice": (D("3.00"), plan.pk),
        "orphan_roll": (D("0.50"), None),  # no period grant left: credits × unit price
        "overage": (D("0.62"), plan.pk),  # 50 × 0.0123 = 0.615, half up
        "free_period": (D("0.00"), free_plan.pk),
        "promo": (D("0.00"), None),
        "sold": (D("12.30"), None),  # a purchase grant without a purchase: credits × unit price
        "bought": (D("11.99"), None),  # the purchase's amount paid
    }


def test_grants_that_have_a_basis_are_left_alone_and_a_second_run_changes_nothing(db):
    plan = PlanFactory(price=D("30.00"))
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(), credits_per_period=D(1000))
    subscription = SubscriptionFactory(plan=plan)
    account = subscription.account
    old = legacy(account, 1000, Source.PLAN_PERIOD,
                 reference=f"period:{subscription.pk}:{START}:credits")  # fmt: skip
    new = give(account, 5, source=Source.PURCHASE, unit_price=D("1"), basis_amount=D("4.50"))
    migrate()
    plan.price = D("60.00")
    plan.save()
    migrate()
    assert CreditGrant.objects.get(pk=old.pk).basis_amount == D("30.00")
    assert CreditGrant.objects.get(pk=new.pk).basis_amount == D("4.50")
