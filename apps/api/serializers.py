from rest_framework import serializers

from apps.catalog.models import CreditPack, Feature, Plan


class PlanAllowanceOut(serializers.Serializer):
    credit_type = serializers.CharField(source="credit_type.code")
    credits_per_period = serializers.DecimalField(max_digits=24, decimal_places=6)


class PlanFeatureOut(serializers.Serializer):
    feature = serializers.CharField(source="feature.code")
    enabled = serializers.BooleanField()
    credits_per_unit = serializers.DecimalField(
        max_digits=24, decimal_places=6, allow_null=True, help_text="Null: the feature's own price."
    )
    limit_per_period = serializers.DecimalField(
        max_digits=24, decimal_places=6, allow_null=True, help_text="Null: no quota."
    )


class PlanOut(serializers.ModelSerializer):
    included_credits = PlanAllowanceOut(source="allowances", many=True)
    features = PlanFeatureOut(source="plan_features", many=True)

    class Meta:
        model = Plan
        fields = [
            "code", "name", "description", "billing_interval", "price", "currency",
            "included_credits", "features", "rollover_percent", "rollover_cap",
            "rollover_expires_after_periods", "overage_policy", "overage_limit",
            "overage_unit_price",
        ]  # fmt: skip


class CreditPackOut(serializers.ModelSerializer):
    credit_type = serializers.CharField(source="credit_type.code")

    class Meta:
        model = CreditPack
        fields = [
            "code", "name", "description", "credit_type", "credits", "price", "currency",
            "expires_after_days",
        ]  # fmt: skip


class FeatureOut(serializers.ModelSerializer):
    credit_type = serializers.CharField(source="credit_type.code", allow_null=True)

    class Meta:
        model = Feature
        fields = [
            "code",
            "name",
            "description",
            "kind",
            "credit_type",
            "credits_per_unit",
            "unit_name",
        ]
