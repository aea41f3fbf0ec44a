from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts.models import Account, Subscription
from apps.catalog.models import CreditPack, CreditType, Feature, Plan, PlanAllowance, PlanFeature


class CreditTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditType
        django_get_or_create = ["code"]

    code = "credits"
    name = "Credits"


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature

    code = factory.Sequence(lambda n: f"feature_{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())
    credit_type = factory.SubFactory(CreditTypeFactory)
    credits_per_unit = Decimal("1")


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"plan_{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    price = Decimal("29.00")


class PlanAllowanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlanAllowance

    plan = factory.SubFactory(PlanFactory)
    credit_type = factory.SubFactory(CreditTypeFactory)
    credits_per_period = Decimal("1000")


class PlanFeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlanFeature

    plan = factory.SubFactory(PlanFactory)
    feature = factory.SubFactory(FeatureFactory)


class CreditPackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditPack

    code = factory.Sequence(lambda n: f"pack_{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    credit_type = factory.SubFactory(CreditTypeFactory)
    credits = Decimal("1000")
    price = Decimal("10.00")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    external_id = factory.Sequence(lambda n: f"acct_{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    account = factory.SubFactory(AccountFactory)
    plan = factory.SubFactory(PlanFactory)
    current_period_start = factory.LazyFunction(timezone.now)
    billing_anchor = factory.LazyAttribute(lambda o: o.current_period_start)
    current_period_end = factory.LazyAttribute(
        lambda o: o.current_period_start + timedelta(days=30)
    )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True

    @factory.post_generation
    def groups(self, create, names, **kwargs):
        from django.contrib.auth.models import Group

        for name in names or ():
            self.groups.add(Group.objects.get(name=name))
