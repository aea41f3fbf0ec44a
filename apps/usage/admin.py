from django.contrib import admin

from apps.core.admin import QUANTITY, LargeTableAdmin

from .models import UsageEvent


@admin.register(UsageEvent)
class UsageEventAdmin(LargeTableAdmin):
    list_display = ["id", "occurred_at", "account", "feature", "quantity", "credits",
                    "balance_after", "idempotency_key"]  # fmt: skip
    list_filter = ["feature", "occurred_at"]
    list_select_related = ["account", "feature"]
    search_fields = ["=account__external_id", "=idempotency_key"]
    ordering = ["-id"]
    number_kinds = {"quantity": QUANTITY}  # units of the feature, not credits
