"""Cost bases for grants made before grants carried one (docs/revenue.md, "Grants made
before cost bases"): sets `basis_amount` and `plan` on every grant that has neither yet.

- plan-period grants (reference `period:<subscription>:<start>:<credit type>`): their credit
  type's part of the subscription's plan's price, split as it is split today
  (apps/catalog/pricing.py); plan: the subscription's plan;
- their rolled-over credits (`…:rollover`, once per roll): what the grant they rolled from
  had not released when they left it, by the rule a rollover follows today
  (apps/wallets/ledger.py, `close`): parent basis − released(parent basis, parent credits,
  parent credits − rolled credits); plan: the parent's;
- overage grants (`overage:…`): credits × unit price, half up; plan: the subscription's;
- any other grant sold at a unit price (not a purchase: apps/billing/migrations does those):
  credits × unit price, half up;
- promo, manual and trial grants keep 0.

In chunks of grant ids, each chunk one UPDATE (bulk_update). Reversing it leaves the values
(there is nothing to undo: the columns were 0 and empty before)."""

from decimal import Decimal

from django.db import migrations
from django.db.models import Q

from apps.catalog.pricing import price_split
from apps.core.allocation import cost_basis, released

CHUNK = 2000
ROLLOVER = ":rollover"
FREE = ("promo", "manual", "trial")


def _subscription_id(reference):
    """`period:<id>:…` / `overage:<id>:…` -> id, or None."""
    parts = reference.split(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class _Splits:
    """Each plan's price split by credit type code, read once per plan."""

    def __init__(self, apps):
        self.Plan = apps.get_model("catalog", "Plan")
        self.PlanAllowance = apps.get_model("catalog", "PlanAllowance")
        self.plans = {}

    def basis(self, plan_id, code):
        if plan_id not in self.plans:
            plan = self.Plan.objects.get(pk=plan_id)
            allowances = list(
                self.PlanAllowance.objects.filter(plan_id=plan_id).select_related("credit_type")
            )
            try:
                bases, _ = price_split(plan=plan, allowances=allowances)
            except ValueError:  # values the catalog would refuse: by credits, as before
                for allowance in allowances:
                    allowance.standalone_value = None
                plan.platform_fee_value = Decimal(0)
                bases, _ = price_split(plan=plan, allowances=allowances)
            self.plans[plan_id] = {
                a.credit_type.code: basis for a, basis in zip(allowances, bases, strict=True)
            }
        return self.plans[plan_id].get(code, Decimal(0))


def _period_basis(grant, subscriptions, splits):
    """(basis, plan id) of a plan-period grant by its reference."""
    subscription_plan = subscriptions.get(_subscription_id(grant.reference or ""))
    if subscription_plan is None:
        return Decimal(0), None
    code = grant.reference.rsplit(":", 1)[1]
    return splits.basis(subscription_plan, code), subscription_plan


def set_grant_cost_bases(apps, schema_editor):
    CreditGrant = apps.get_model("wallets", "CreditGrant")
    Subscription = apps.get_model("accounts", "Subscription")
    splits = _Splits(apps)
    pending = (
        CreditGrant.objects.filter(basis_amount=0, plan__isnull=True)
        .exclude(source__in=(*FREE, "purchase"))
        .filter(
            Q(source__in=("plan_period", "rollover", "overage"))
            | Q(unit_price__gt=0)
        )
        .order_by("pk")
    )  # fmt: skip
    last = 0
    while True:
        chunk = list(
            pending.filter(pk__gt=last).only(
                "pk", "account_id", "source", "amount", "unit_price", "currency", "reference"
            )[:CHUNK]
        )
        if not chunk:
            return
        last = chunk[-1].pk
        # The grant each rollover came from (one `:rollover` less): earlier chunks wrote
        # theirs already; one in this chunk is taken as set below (pk order: parents first).
        wanted = {
            (g.account_id, g.reference[: -len(ROLLOVER)])
            for g in chunk
            if g.source == "rollover" and (g.reference or "").endswith(ROLLOVER)
        }
        parents = {}
        if wanted:
            rows = CreditGrant.objects.filter(
                account_id__in={a for a, _ in wanted}, reference__in={r for _, r in wanted}
            ).only("pk", "account_id", "amount", "basis_amount", "plan_id", "reference")
            parents = {(g.account_id, g.reference): g for g in rows}
        ids = {
            _subscription_id(g.reference or "")
            for g in chunk
            if g.source in ("plan_period", "overage")
        } - {None}
        subscriptions = dict(Subscription.objects.filter(pk__in=ids).values_list("pk", "plan_id"))
        changed, seen = [], {}
        for grant in chunk:
            basis, plan_id = Decimal(0), None
            if grant.source == "plan_period":
                basis, plan_id = _period_basis(grant, subscriptions, splits)
            elif grant.source == "rollover":
                key = (grant.account_id, (grant.reference or "")[: -len(ROLLOVER)])
                parent = seen.get(key) or parents.get(key)
                if parent is not None:
                    basis = parent.basis_amount - released(
                        parent.basis_amount, parent.amount, parent.amount - grant.amount,
                        currency=grant.currency,
                    )  # fmt: skip
                    plan_id = parent.plan_id
                elif grant.unit_price:
                    basis = cost_basis(grant.amount, grant.unit_price, currency=grant.currency)
            else:
                if grant.source == "overage":
                    plan_id = subscriptions.get(_subscription_id(grant.reference or ""))
                basis = cost_basis(grant.amount, grant.unit_price, currency=grant.currency)
            grant.basis_amount, grant.plan_id = basis, plan_id
            seen[(grant.account_id, grant.reference)] = grant
            if basis or plan_id:
                changed.append(grant)
        CreditGrant.objects.bulk_update(changed, ["basis_amount", "plan"], batch_size=CHUNK)


class Migration(migrations.Migration):
    dependencies = [
        ("periods", "0004_jobrun_moves_to_jobs"),
        ("wallets", "0008_grant_cost_basis_and_ledger_txid"),
        ("catalog", "0005_plan_standalone_values"),
        ("accounts", "0006_subscription_renewal_hold"),
    ]

    operations = [migrations.RunPython(set_grant_cost_bases, migrations.RunPython.noop)]
