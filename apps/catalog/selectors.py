from django.db.models import Prefetch

from apps.core.decimals import format_decimal, format_money

from .models import CreditPack, CreditType, Feature, Plan, PlanAllowance, PlanFeature
from .pricebook import FORMAT_VERSION


def _optional_decimal(value):
    return None if value is None else format_decimal(value)


def credit_type_document(credit_type):
    return {"code": credit_type.code, "name": credit_type.name}


def feature_document(feature):
    return {
        "code": feature.code,
        "name": feature.name,
        "description": feature.description,
        "kind": feature.kind,
        "credit_type": feature.credit_type.code if feature.credit_type_id else None,
        "credits_per_unit": format_decimal(feature.credits_per_unit),
        "unit_name": feature.unit_name,
        "active": feature.active,
    }


def plan_document(plan, *, version=False, allowances=None, plan_features=None):
    """The plan's entry in the file format. Reads `allowances` and `plan_features` as given
    (unsaved rows of an admin form, say), else the plan's, prefetched with their related
    codes. `version` adds the version's number (an export says which version it holds; a
    diff leaves it out)."""
    allowances = sorted(
        plan.allowances.all() if allowances is None else allowances,
        key=lambda a: a.credit_type.code,
    )
    plan_features = sorted(
        plan.plan_features.all() if plan_features is None else plan_features,
        key=lambda pf: pf.feature.code,
    )
    return {
        "code": plan.code,
        **({"version": plan.version} if version else {}),
        "name": plan.name,
        "description": plan.description,
        "billing_interval": plan.billing_interval,
        "price": format_money(plan.price),
        "currency": plan.currency,
        "public": plan.public,
        "active": plan.active,
        "included_credits": {
            a.credit_type.code: format_decimal(a.credits_per_period) for a in allowances
        },
        "standalone_values": {
            a.credit_type.code: format_money(a.standalone_value)
            for a in allowances
            if a.standalone_value is not None
        },
        "platform_fee_value": format_money(plan.platform_fee_value),
        "features": [
            {
                "feature": pf.feature.code,
                "enabled": pf.enabled,
                "credits_per_unit": _optional_decimal(pf.credits_per_unit),
                "limit_per_period": _optional_decimal(pf.limit_per_period),
            }
            for pf in plan_features
        ],
        "rollover": {
            "percent": format_decimal(plan.rollover_percent),
            "cap": _optional_decimal(plan.rollover_cap),
            "expires_after_periods": plan.rollover_expires_after_periods,
        },
        "overage": {
            "policy": plan.overage_policy,
            "limit": format_decimal(plan.overage_limit),
            "unit_price": format_decimal(plan.overage_unit_price),
        },
        **({"trial": _trial_document(plan, allowances)} if plan.trial_days else {}),
    }


def _trial_document(plan, allowances):
    return {
        "days": plan.trial_days,
        "credits": {
            a.credit_type.code: format_decimal(a.trial_credits)
            for a in allowances
            if a.trial_credits
        },
    }


def credit_pack_document(pack):
    return {
        "code": pack.code,
        "name": pack.name,
        "description": pack.description,
        "credit_type": pack.credit_type.code,
        "credits": format_decimal(pack.credits),
        "price": format_money(pack.price),
        "currency": pack.currency,
        "expires_after_days": pack.expires_after_days,
        "public": pack.public,
        "active": pack.active,
    }


def plans_with_terms():
    return Plan.objects.prefetch_related(
        Prefetch("allowances", queryset=PlanAllowance.objects.select_related("credit_type")),
        Prefetch("plan_features", queryset=PlanFeature.objects.select_related("feature")),
    )


def catalog_document(*, codes=None, versions=False):
    """The catalog in the file format of docs/catalog.md, every list sorted by code, each
    plan as its current version (`versions` adds their numbers, as an export does).

    `codes` (section -> set of codes) limits each section, for diffing against a file.
    """

    def only(queryset, section):
        if codes is None:
            return queryset
        return queryset.filter(code__in=codes.get(section, ()))

    return {
        "version": FORMAT_VERSION,
        "credit_types": [
            credit_type_document(ct)
            for ct in only(CreditType.objects.order_by("code"), "credit_types")
        ],
        "features": [
            feature_document(f)
            for f in only(
                Feature.objects.select_related("credit_type").order_by("code"), "features"
            )
        ],
        "plans": [
            plan_document(p, version=versions)
            for p in only(plans_with_terms().filter(current=True).order_by("code"), "plans")
        ],
        "credit_packs": [
            credit_pack_document(p)
            for p in only(
                CreditPack.objects.select_related("credit_type").order_by("code"), "credit_packs"
            )
        ],
    }


def public_plans():
    return plans_with_terms().filter(current=True, active=True, public=True)


def on_sale(*, model, code):
    """The pack, or the current version of the plan, that `code` names if it is on sale."""
    items = model.objects.filter(code=code, active=True, public=True)
    if model is Plan:
        items = items.filter(current=True)
    return items.first()


def public_credit_packs():
    return CreditPack.objects.select_related("credit_type").filter(active=True, public=True)


def active_features():
    return Feature.objects.select_related("credit_type").filter(active=True)
