from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts.models import Account, Subscription
from apps.catalog.models import (
    Contract,
    CreditPack,
    CreditType,
    Feature,
    Plan,
    PlanAllowance,
    PlanFeature,
)


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


class ContractFactory(factory.django.DjangoModelFactory):
    """A bare contract row (no terms, no history reason): tests that need the service's
    history or terms make theirs with apps.catalog.contracts.put_contract."""

    class Meta:
        model = Contract

    account = factory.SubFactory(AccountFactory)
    starts_at = factory.LazyFunction(timezone.now)


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


class JobRunFactory(factory.django.DjangoModelFactory):
    """A job run's row as the runner leaves it. `started_at` (stamped on insert) may be
    given: it is written after the insert."""

    class Meta:
        model = "jobs.JobRun"

    job = "expire_grants"
    trigger = "beat"
    status = "succeeded"
    as_of = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, started_at=None, **kwargs):
        run = super()._create(model_class, *args, **kwargs)
        if started_at is not None:
            model_class.objects.filter(pk=run.pk).update(started_at=started_at)
            run.started_at = started_at
        return run


def job_run_samples():
    """The states the job-run list sets apart: an idle row standing for 57 runs, a failed
    run, a run stuck past its interval and a job that has not succeeded for two hours."""
    now = timezone.now()

    def ago(minutes):
        return now - timedelta(minutes=minutes)

    JobRunFactory(job="check_balance_alerts", idle_runs=57, started_at=ago(58),
                  last_started_at=ago(2), finished_at=ago(2))  # fmt: skip
    JobRunFactory(job="post_revenue", status="failed", started_at=ago(3),
                  counts={"failures": 1, "errors": ["line 7: ValueError: no price"]})  # fmt: skip
    JobRunFactory(job="renew_due_subscriptions", status="running", finished_at=None,
                  started_at=ago(20))  # fmt: skip
    JobRunFactory(job="send_overage_charges", counts={"invoice_items": 2}, started_at=ago(120),
                  finished_at=ago(120))  # fmt: skip


def admin_samples():
    """One object of every model staff may see in the admin, made through the services where
    there is one (the permission matrix and the admin's browser walk need something to open)."""
    from apps.accounts.services import create_api_key
    from apps.billing.models import AutoRecharge, OverageCharge, Purchase
    from apps.catalog.contracts import put_contract
    from apps.catalog.pricebook import dump_document
    from apps.catalog.selectors import catalog_document
    from apps.jobs.models import JobRun
    from apps.revenue.months import months_back
    from apps.revenue.services import close_month
    from apps.simulation.services import run_simulation, start_run
    from apps.usage.services import consume, reserve
    from apps.wallets.services import grant_credits
    from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

    subscription = SubscriptionFactory(account__external_id="acme")
    account, plan = subscription.account, subscription.plan
    PlanAllowanceFactory(plan=plan)
    feature = FeatureFactory(credits_per_unit=Decimal("1"))
    PlanFeatureFactory(plan=plan, feature=feature)
    pack = CreditPackFactory(credit_type=feature.credit_type)
    grant, _ = grant_credits(
        account=account, credit_type=feature.credit_type, amount=Decimal("100"), source="promo"
    )
    consume(account=account, feature=feature.code, quantity=1)
    reserve(account=account, feature=feature.code, quantity=1)
    create_api_key(name="backend", scopes=["usage:read"], account=account)
    AutoRecharge.objects.create(account=account, credit_pack=pack, threshold=10, monthly_cap=1)
    Purchase.objects.create(
        account=account, credit_pack=pack, credits=1000, price=10, checkout_session_id="cs_test"
    )
    OverageCharge.objects.create(
        account=account, subscription=subscription, grant=grant, credits=1, unit_price=1, amount=1
    )
    JobRun.objects.create(job="expire_grants", as_of=timezone.now())
    job_run_samples()
    endpoint = WebhookEndpoint.objects.create(account=account, url="https://example.com/hook")
    granted = {"id": grant.pk, "source": "promo", "amount": "100", "expires_at": None,
               "reference": None}  # fmt: skip
    event = WebhookEvent.objects.create(
        account=account,
        type="credits.granted",
        data={
            "account": "acme",
            "credit_type": grant.wallet.credit_type.code,
            "grant": granted,
            "balance_after": "100",
        },  # fmt: skip
        created_at=timezone.now(),
    )
    WebhookDelivery.objects.create(
        event=event, endpoint=endpoint, created_at=timezone.now() - timedelta(minutes=1)
    )
    # A closed revenue month (last month: this month's lines need not be closed first).
    close_month(month=months_back(timezone.localdate().replace(day=1), 2)[0], acting_user=None)
    # Something for the catalog's history to revert to.
    plan.name = "Renamed"
    plan.save()
    # Last: a live contract changes what consume costs.
    put_contract(
        account=account,
        raw={
            "price": "1200.00",
            "currency": "USD",
            "overage": {"unit_price": "0.004"},
            "included_credits": {feature.credit_type.code: "5000"},
            "features": [{"feature": feature.code, "credits_per_unit": "0.5"}],
        },
        reason="sample deal",
    )
    # A what-if on that account, run to its results (last month: before any of its usage).
    run = start_run(title="API calls at twice the price", account_ids=[account.pk],
                    draft_text=dump_document(catalog_document()))  # fmt: skip
    run_simulation(run_id=run.pk)
    return subscription
