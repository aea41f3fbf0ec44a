from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import DecimalField, Exists, OuterRef, Subquery

from apps.accounts.models import Subscription
from apps.catalog.models import Feature, PlanFeature
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES

CREDITS = DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)


@dataclass(frozen=True)
class FeatureTerms:
    """What a feature costs one account right now, under its plan (or without one)."""

    feature: Feature
    enabled: bool
    credits_per_unit: Decimal
    limit_per_period: Decimal | None
    period_start: datetime | None
    overdraft_limit: Decimal
    plan_code: str | None

    @property
    def credit_type_id(self):
        return self.feature.credit_type_id


def feature_terms(*, account, feature_codes):
    """Terms of each active feature among `feature_codes` for `account`, in one query.

    Rules: on a plan, a feature is enabled when the plan lists it as enabled, at the plan's
    price if it overrides the feature's, with the plan's quota. Without a plan, metered
    features are enabled at their own price (pay as you go with packs); boolean ones are not.
    """
    live = Subscription.objects.filter(
        account_id=account.pk, status__in=Subscription.LIVE_STATUSES
    ).order_by()
    plan_feature = PlanFeature.objects.filter(
        plan_id=Subquery(live.values("plan_id")[:1]), feature_id=OuterRef("pk")
    )
    rows = (
        Feature.objects.filter(code__in=set(feature_codes), active=True)
        .select_related("credit_type")
        .annotate(
            _plan_code=Subquery(live.values("plan__code")[:1]),
            _period_start=Subquery(live.values("current_period_start")[:1]),
            _overage_policy=Subquery(live.values("plan__overage_policy")[:1]),
            _overage_limit=Subquery(live.values("plan__overage_limit")[:1], output_field=CREDITS),
            _listed=Exists(plan_feature),
            _enabled=Subquery(plan_feature.values("enabled")[:1]),
            _credits_per_unit=Subquery(
                plan_feature.values("credits_per_unit")[:1], output_field=CREDITS
            ),
            _limit=Subquery(plan_feature.values("limit_per_period")[:1], output_field=CREDITS),
        )
    )
    terms = {}
    for feature in rows:
        on_plan = feature._plan_code is not None
        if on_plan:
            enabled = bool(feature._listed and feature._enabled)
        else:
            enabled = feature.kind == Feature.Kind.METERED
        overdraft = feature._overage_limit if feature._overage_policy == "allow" else None
        terms[feature.code] = FeatureTerms(
            feature=feature,
            enabled=enabled,
            credits_per_unit=(
                feature._credits_per_unit
                if feature._credits_per_unit is not None
                else feature.credits_per_unit
            ),
            limit_per_period=feature._limit if on_plan else None,
            period_start=feature._period_start,
            overdraft_limit=overdraft or Decimal(0),
            plan_code=feature._plan_code,
        )
    return terms
