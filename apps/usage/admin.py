from django.contrib import admin

from apps.core.admin import QUANTITY, ExportMixin, LargeTableAdmin
from apps.core.exports import DATETIME, DECIMAL, ID, Column

from . import report_admin  # noqa: F401  (registers the "Reports" section's pages)
from .models import UsageEvent

# What *Export CSV* / *Export JSON Lines* write for this list (docs/exports.md).
USAGE_EVENT_COLUMNS = [
    Column("id", kind=ID),
    Column("occurred_at", kind=DATETIME),
    Column("created_at", kind=DATETIME),
    Column("account", "account__external_id"),
    Column("feature", "feature__code"),
    Column("credit_type", "credit_type__code"),
    Column("quantity", kind=DECIMAL),
    Column("credits_per_unit", kind=DECIMAL),
    Column("credits", kind=DECIMAL),
    Column("balance_after", kind=DECIMAL),
    Column("available_after", kind=DECIMAL),
    Column("idempotency_key"),
]


@admin.register(UsageEvent)
class UsageEventAdmin(ExportMixin, LargeTableAdmin):
    export_columns = USAGE_EVENT_COLUMNS
    list_display = ["id", "occurred_at", "account", "feature", "quantity", "credits",
                    "balance_after", "idempotency_key"]  # fmt: skip
    list_filter = ["feature", "occurred_at"]
    list_select_related = ["account", "feature"]
    search_fields = ["=account__external_id", "=idempotency_key"]
    ordering = ["-id"]
    number_kinds = {"quantity": QUANTITY}  # units of the feature, not credits
