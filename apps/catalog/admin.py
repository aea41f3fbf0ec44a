from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet

from apps.accounts.models import Subscription
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.core.admin import QUANTITY, HistoryAdmin, HumanNumbers
from apps.core.errors import DomainError
from apps.core.humanize import money

from .models import CreditPack, CreditType, Feature, Plan, PlanAllowance, PlanFeature
from .pricing import split_problems


class SyncToStripe:
    """ "Sync to Stripe" on plans and packs: a Product and a Price for each selected item
    (apps/billing/catalog_sync.py), reported back on the page."""

    actions = ["sync_to_stripe"]

    @admin.action(description="Sync selected to Stripe (product and price)",
                  permissions=["change"])  # fmt: skip
    def sync_to_stripe(self, request, queryset):
        none = queryset.model.objects.none()
        selected = {"plans": none, "packs": none}
        selected["plans" if queryset.model is Plan else "packs"] = queryset
        try:
            report = sync_stripe_catalog(plans=selected["plans"], packs=selected["packs"])
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        self.message_user(request, f"Stripe: {report.summary()}.", messages.SUCCESS)

    @admin.display(description="Stripe price")
    def stripe_price_label(self, item):
        return item.stripe_price_id or "not synced"


@admin.register(CreditType)
class CreditTypeAdmin(HistoryAdmin):
    list_display = ["code", "name", "updated_at"]
    search_fields = ["code", "name"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Feature)
class FeatureAdmin(HistoryAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "credit_type",
        "credits_per_unit",
        "unit_name",
        "active",
    ]
    list_filter = ["kind", "active", "credit_type"]
    list_select_related = ["credit_type"]
    search_fields = ["code", "name", "description"]
    autocomplete_fields = ["credit_type"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "kind", "active"]}),
        ("Price", {"fields": ["credit_type", "credits_per_unit", "unit_name"]}),
        ("Changes", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]


class PlanAllowanceFormSet(BaseInlineFormSet):
    """The plan's standalone values are checked together, with the plan's platform fee as
    the form above sets it (apps/catalog/pricing.py)."""

    def clean(self):
        super().clean()
        kept = [
            form.instance
            for form in self.forms
            if form.is_valid() and form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        problems = split_problems(
            fee_value=self.instance.platform_fee_value,
            allowances=kept,
            name=lambda a: a.credit_type.code if a.credit_type_id else "(new)",
        )
        if problems:
            raise ValidationError(problems)


class PlanAllowanceInline(HumanNumbers, admin.TabularInline):
    model = PlanAllowance
    formset = PlanAllowanceFormSet
    extra = 0
    autocomplete_fields = ["credit_type"]
    fields = ["credit_type", "credits_per_period", "standalone_value"]
    verbose_name = "included credits per period"
    verbose_name_plural = "included credits per period"


class PlanFeatureInline(HumanNumbers, admin.TabularInline):
    model = PlanFeature
    extra = 0
    autocomplete_fields = ["feature"]
    fields = ["feature", "enabled", "credits_per_unit", "limit_per_period"]
    number_kinds = {"limit_per_period": QUANTITY}  # units of use, not credits


@admin.register(Plan)
class PlanAdmin(SyncToStripe, HistoryAdmin):
    list_display = [
        "code", "name", "billing_interval", "price_label", "overage_policy", "live_subscriptions",
        "public", "active", "stripe_price_label",
    ]  # fmt: skip
    list_filter = ["active", "public", "billing_interval", "overage_policy", "currency"]
    search_fields = ["code", "name", "description"]
    readonly_fields = ["created_at", "updated_at", "stripe_price_label"]
    inlines = [PlanAllowanceInline, PlanFeatureInline]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "public", "active"]}),
        (
            "Price",
            {
                "fields": [
                    "billing_interval",
                    "price",
                    "currency",
                    "platform_fee_value",
                    "stripe_price_label",
                ]
            },
        ),
        (
            "Rollover of unused included credits",
            {"fields": ["rollover_percent", "rollover_cap", "rollover_expires_after_periods"]},
        ),
        ("Overage", {"fields": ["overage_policy", "overage_limit", "overage_unit_price"]}),
        ("Changes", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        live = Q(subscriptions__status__in=Subscription.LIVE_STATUSES)
        return super().get_queryset(request).annotate(_live=Count("subscriptions", filter=live))

    @admin.display(description="Price", ordering="price")
    def price_label(self, plan):
        return f"{money(plan.price, plan.currency)} / {plan.billing_interval}"

    @admin.display(description="Live subscriptions", ordering="_live")
    def live_subscriptions(self, plan):
        return plan._live


@admin.register(CreditPack)
class CreditPackAdmin(SyncToStripe, HistoryAdmin):
    list_display = [
        "code", "name", "credit_type", "credits", "price_label", "expires_after_days", "public",
        "active", "stripe_price_label",
    ]  # fmt: skip
    list_filter = ["active", "public", "credit_type", "currency"]
    list_select_related = ["credit_type"]
    search_fields = ["code", "name", "description"]
    autocomplete_fields = ["credit_type"]
    readonly_fields = ["created_at", "updated_at", "stripe_price_label"]

    @admin.display(description="Price", ordering="price")
    def price_label(self, pack):
        return money(pack.price, pack.currency)
