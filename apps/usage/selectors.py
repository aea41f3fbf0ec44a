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


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    reason: str | None
    credits_required: Decimal | None
    credit_type: str | None
    available: Decimal | None
    details: dict


def check(*, account, feature, quantity=1):
    """Would `consume` succeed now? Writes nothing and takes no locks: the answer can be
    overtaken by a concurrent consume, which is why consume checks again."""
    from django.db.models import Q, Sum
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from apps.core.errors import DomainError, FeatureNotFound
    from apps.wallets.ledger import exact_credits
    from apps.wallets.models import Wallet

    from .services import Counters, _resolve, parse_quantity

    quantity = parse_quantity(quantity)
    terms = feature_terms(account=account, feature_codes=[feature])
    t = terms.get(feature)
    if t is None:
        raise FeatureNotFound.of(feature)
    credit_type = t.feature.credit_type.code if t.feature.credit_type_id else None
    try:
        _resolve(account, terms, feature)
        credits = exact_credits(quantity * t.credits_per_unit)
        Counters.load({account.pk: terms}).check(account.pk, t, quantity)
    except FeatureNotFound:
        raise
    except DomainError as error:
        if error.code == "validation_error":
            raise
        return CheckResult(False, error.code, None, credit_type, None, error.details)
    now = timezone.now()
    wallet = (
        Wallet.objects.filter(account=account, credit_type_id=t.credit_type_id)
        .annotate(
            _expired=Coalesce(
                Sum("grants__remaining", filter=Q(grants__expires_at__lte=now)),
                Decimal(0),
                output_field=CREDITS,
            )
        )
        .first()
    )
    # Credits past their expiry that the job has not reached yet are not spendable.
    available = wallet.balance - wallet._expired - wallet.held if wallet else Decimal(0)
    if credits > available + t.overdraft_limit:
        return CheckResult(
            False,
            "insufficient_credits",
            credits,
            credit_type,
            available,
            {"credits_required": credits, "available": available, "credit_type": credit_type},
        )
    return CheckResult(True, None, credits, credit_type, available, {})
