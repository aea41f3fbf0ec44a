from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html

from apps.core.admin import LargeTableAdmin

from .models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint, WebhookEvent
from .services import resend


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["account", "url", "events", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["account__external_id", "url"]
    autocomplete_fields = ["account"]
    readonly_fields = ["secret", "previous_secret_expires_at", "created_at"]
    fields = ["account", "url", "event_types", "active", "description", "secret",
              "previous_secret_expires_at", "created_at"]  # fmt: skip
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description="Events")
    def events(self, endpoint):
        return ", ".join(endpoint.event_types) or "all"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.base_fields["event_types"].help_text = (
            "A JSON list of: "
            + ", ".join(code for code, _ in EVENT_TYPES)
            + ". Empty list: every event."
        )
        return form


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    fields = ["endpoint", "status", "attempts", "last_response_status", "delivered_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(LargeTableAdmin):
    list_display = ["id", "type", "account", "created_at"]
    list_filter = ["type"]
    search_fields = ["id", "account__external_id"]
    readonly_fields = ["id", "account", "type", "data", "created_at"]
    inlines = [DeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdmin):
    list_display = ["event_link", "event_type", "endpoint", "status", "attempts",
                    "last_response_status", "next_attempt_at", "delivered_at"]  # fmt: skip
    list_filter = ["status", "event__type"]
    search_fields = ["event__id", "endpoint__url", "endpoint__account__external_id"]
    list_select_related = ["event", "endpoint", "endpoint__account"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["resend_deliveries"]

    @admin.display(description="Event", ordering="event")
    def event_link(self, delivery):
        return format_html(
            '<a href="../webhookevent/{}/change/">{}</a>', delivery.event_id, delivery.event_id
        )

    @admin.display(description="Type")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.action(
        description="Resend selected deliveries (same event id, new signature)",
        permissions=["resend"],
    )
    def resend_deliveries(self, request, queryset):
        count = 0
        for delivery in queryset:
            resend(delivery=delivery, acting_user=request.user)
            count += 1
        messages.success(request, f"Queued {count} deliveries again.")

    def has_resend_permission(self, request):
        return request.user.has_perm("webhooks.change_webhookdelivery")
