from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import format_html
from djstripe.admin.views import ConfirmCustomAction

from apps.core.admin import ExportMixin, LargeTableAdmin
from apps.core.exports import DATETIME, DECIMAL, ID, MONEY, NUMBER, Column
from apps.core.humanize import money

from .models import OverageCharge, Purchase

# What *Export CSV* / *Export JSON Lines* write for these lists (docs/exports.md).
PURCHASE_COLUMNS = [
    Column("id", kind=ID),
    Column("created_at", kind=DATETIME),
    Column("paid_at", kind=DATETIME),
    Column("account", "account__external_id"),
    Column("credit_pack", "credit_pack__code"),
    Column("origin"),
    Column("status"),
    Column("credits", kind=DECIMAL),
    Column("price", kind=MONEY),
    Column("currency"),
    Column("amount_paid", kind=MONEY),
    Column("amount_refunded", kind=MONEY),
    Column("amount_disputed", kind=MONEY),
    Column("credits_clawed_back", kind=DECIMAL),
    Column("credits_disputed", kind=DECIMAL),
    Column("grant_id", kind=ID),
    Column("checkout_session_id"),
    Column("payment_intent_id"),
    Column("mismatch_note"),
]
OVERAGE_CHARGE_COLUMNS = [
    Column("id", kind=ID),
    Column("created_at", kind=DATETIME),
    Column("sent_at", kind=DATETIME),
    Column("account", "account__external_id"),
    Column("subscription_id", kind=ID),
    Column("grant_id", kind=ID),
    Column("credits", kind=DECIMAL),
    Column("unit_price", kind=DECIMAL),
    Column("amount", kind=MONEY),
    Column("currency"),
    Column("status"),
    Column("stripe_invoice_item_id"),
    Column("attempts", kind=NUMBER),
    Column("note"),
]


@admin.register(Purchase)
class PurchaseAdmin(ExportMixin, LargeTableAdmin):
    """Every credit pack bought through Stripe: paid, granted, refunded, disputed. Filter
    *status: Paid amount differs* lists the payments Stripe took at another amount or
    currency than sold: nothing was granted for them (docs/billing.md)."""

    list_display = ["created_at", "account", "credit_pack", "status", "paid_label",
                    "refunded_label", "credits", "credits_clawed_back", "grant_link"]  # fmt: skip
    list_filter = ["status", "origin", "credit_pack"]
    list_select_related = ["account", "credit_pack"]
    search_fields = ["account__external_id", "checkout_session_id", "payment_intent_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "account", "credit_pack", "origin", "status", "credits", "price", "currency",
        "checkout_session_id", "payment_intent_id", "amount_paid", "amount_refunded",
        "amount_disputed", "credits_clawed_back", "grant_link", "created_at", "paid_at",
        "mismatch_note",
    ]  # fmt: skip
    fields = readonly_fields
    export_columns = PURCHASE_COLUMNS

    @admin.display(description="Paid", ordering="amount_paid")
    def paid_label(self, purchase):
        return money(purchase.amount_paid, purchase.currency) if purchase.paid_at else "—"

    @admin.display(description="Refunded / disputed")
    def refunded_label(self, purchase):
        if not (purchase.amount_refunded or purchase.amount_disputed):
            return "—"
        return (
            f"{money(purchase.amount_refunded, purchase.currency)} / "
            f"{money(purchase.amount_disputed, purchase.currency)}"
        )

    @admin.display(description="Grant")
    def grant_link(self, purchase):
        if purchase.grant_id is None:
            return "—"
        url = reverse("admin:wallets_creditgrant_change", args=[purchase.grant_id])
        return format_html('<a href="{}">#{}</a>', url, purchase.grant_id)


@admin.register(OverageCharge)
class OverageChargeAdmin(ExportMixin, LargeTableAdmin):
    """Overage billed at period end: sent to Stripe, pending, or left for finance."""

    list_display = ["created_at", "account", "credits", "unit_price", "amount", "status",
                    "stripe_invoice_item_id", "attempts"]  # fmt: skip
    list_filter = ["status", "currency"]
    list_select_related = ["account"]
    search_fields = ["account__external_id", "stripe_invoice_item_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "account", "subscription", "grant", "credits", "unit_price", "amount", "currency",
        "status", "stripe_invoice_item_id", "attempts", "note", "created_at", "sent_at",
    ]  # fmt: skip
    fields = readonly_fields
    export_columns = OVERAGE_CHARGE_COLUMNS


@admin.site.admin_view
def djstripe_custom_action(request, action_name, model_name, **kwargs):
    """dj-stripe's "re-sync from Stripe" confirmation page checks only that the user is staff;
    served here first (config/urls.py), it needs the change permission of the model, which no
    staff group has: syncing from Stripe is for superusers."""
    model = apps.get_model("djstripe", model_name)
    if not request.user.has_perm(f"djstripe.change_{model._meta.model_name}"):
        raise PermissionDenied
    return ConfirmCustomAction.as_view()(
        request, action_name=action_name, model_name=model_name, **kwargs
    )
