import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms.formsets import all_valid
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.accounts.models import Subscription
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.plan_moves import WHEN, move_subscribers, preview_move, version_of
from apps.core.admin import QUANTITY, HistoryAdmin, HumanNumbers
from apps.core.errors import DomainError
from apps.core.humanize import money

from . import contract_admin  # noqa: F401  (registers the contracts' screens)
from .models import CreditPack, CreditType, Feature, Plan, PlanAllowance, PlanFeature
from .pricing import split_problems
from .selectors import plan_document, plans_with_terms
from .services import changes_terms, in_use, plan_diff, save_plan_entry


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
    fields = ["credit_type", "credits_per_period", "standalone_value", "trial_credits"]
    verbose_name = "included credits per period"
    verbose_name_plural = "included credits per period"


class PlanFeatureInline(HumanNumbers, admin.TabularInline):
    model = PlanFeature
    extra = 0
    autocomplete_fields = ["feature"]
    fields = ["feature", "enabled", "credits_per_unit", "limit_per_period"]
    number_kinds = {"limit_per_period": QUANTITY}  # units of use, not credits


class CurrentVersionFilter(admin.SimpleListFilter):
    """Current versions by default: earlier ones matter for the subscribers still on them."""

    title = "version"
    parameter_name = "versions"

    def lookups(self, request, model_admin):
        return [("all", "All versions"), ("earlier", "Earlier versions")]

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Current",
        }
        yield from list(super().choices(changelist))[1:]

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(current=self.value() != "earlier")


class MoveForm(forms.Form):
    when = forms.ChoiceField(
        choices=[(WHEN[0], "Now: new costs, quotas and overage at once; the period stays"),
                 (WHEN[1], "At their period end: everything changes at the renewal")],
        widget=forms.RadioSelect,
    )  # fmt: skip


@admin.register(Plan)
class PlanAdmin(SyncToStripe, HistoryAdmin):
    """A plan version's page. Saving a change of terms on a version that subscribers use
    shows what changes and, confirmed, publishes the next version (docs/catalog.md, "Plan
    versions"); listing fields change in place. Earlier versions are read only."""

    list_display = [
        "code", "version", "name", "billing_interval", "price_label", "overage_policy",
        "live_subscriptions", "public", "active", "stripe_price_label",
    ]  # fmt: skip
    list_filter = [
        CurrentVersionFilter,
        "active",
        "public",
        "billing_interval",
        "overage_policy",
        "currency",
    ]
    search_fields = ["code", "name", "description"]
    readonly_fields = ["version", "current", "created_at", "updated_at", "stripe_price_label"]
    inlines = [PlanAllowanceInline, PlanFeatureInline]
    actions = ["sync_to_stripe", "move_to_current_version"]
    # A revert would rewrite the terms subscribers bought in place; an edit of the current
    # version (which publishes when they are in use) is the way back to earlier terms.
    history_revert = False
    fieldsets = [
        (
            None,
            {"fields": ["code", "version", "current", "name", "description", "public", "active"]},
        ),  # fmt: skip
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
        ("Trial", {"fields": ["trial_days"]}),
        ("Changes", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        live = Q(subscriptions__status__in=Subscription.LIVE_STATUSES)
        return super().get_queryset(request).annotate(_live=Count("subscriptions", filter=live))

    def has_change_permission(self, request, obj=None):
        # An earlier version is what its subscribers bought: it is read, not edited.
        return super().has_change_permission(request, obj) and (obj is None or obj.current)

    def has_delete_permission(self, request, obj=None):
        # A plan with several versions keeps them all: an earlier one is what its
        # subscribers bought, and the current one is what the code sells.
        several = obj is not None and Plan.objects.filter(code=obj.code).exclude(pk=obj.pk)
        return super().has_delete_permission(request, obj) and not (several and several.exists())

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "code"] if obj is not None else fields

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id is not None:
            plan = self.get_object(request, object_id)
            if plan is not None and self.has_change_permission(request, plan):
                if "_publish" in request.POST:
                    return self._publish(request, plan)
                if in_use(plan):
                    confirm = self._confirm_publish(request, plan)
                    if confirm is not None:
                        return confirm
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _edited_entry(self, request, plan):
        """The plan entry (catalog file format) the POSTed form and inlines describe, or
        None when they do not validate (the normal change view then shows why)."""
        form = self.get_form(request, plan, change=True)(request.POST, request.FILES,
                                                          instance=plan)  # fmt: skip
        if not form.is_valid():
            return None
        formsets, _ = self._create_formsets(request, form.instance, change=True)
        if not all_valid(formsets):
            return None
        rows = {}
        for formset in formsets:
            rows[formset.model] = [
                f.instance
                for f in formset.forms
                if f.cleaned_data and not f.cleaned_data.get("DELETE")
            ]
        return plan_document(form.instance, allowances=rows.get(PlanAllowance, []),
                             plan_features=rows.get(PlanFeature, []))  # fmt: skip

    def _confirm_publish(self, request, plan):
        """The confirmation page when the edit changes terms of a version in use; None when
        it saves in place."""
        before = plan_document(plans_with_terms().get(pk=plan.pk))
        entry = self._edited_entry(request, Plan.objects.get(pk=plan.pk))
        if entry is None:
            return None
        diff = plan_diff(before, entry)
        if not changes_terms(diff):
            return None
        live = plan.subscriptions.filter(status__in=Subscription.LIVE_STATUSES).count()
        return TemplateResponse(request, "admin/catalog/plan/publish.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Publish version {plan.version + 1} of {plan.name}?",
            "plan": plan,
            "diff": diff,
            "live": live,
            "entry": json.dumps(entry),
            "before": json.dumps(before),
            "back": reverse("admin:catalog_plan_change", args=[plan.pk]),
        })  # fmt: skip

    def _publish(self, request, plan):
        try:
            entry = json.loads(request.POST["entry"])
            if not isinstance(entry, dict) or entry.get("code") != plan.code:
                raise ValueError("not this plan's entry")
            # The plan as the confirmation page showed it: saved by someone else since,
            # the confirmed entry would overwrite their change.
            seen = json.loads(request.POST["before"]) if "before" in request.POST else None
            published, new_version = save_plan_entry(
                entry=entry,
                acting_user=request.user,
                reason=f"admin: {request.POST.get('reason') or 'plan edited'}",
                seen=seen,
            )
        except (KeyError, ValueError):
            self.message_user(request, "That form was not a plan's; nothing was saved.",
                              messages.ERROR)  # fmt: skip
            return HttpResponseRedirect(reverse("admin:catalog_plan_change", args=[plan.pk]))
        except DomainError as error:
            problems = "; ".join(error.details.get("catalog", [])) or error.message
            self.message_user(request, f"Nothing was saved: {problems}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:catalog_plan_change", args=[plan.pk]))
        if new_version:
            self.message_user(request, f"Published version {published.version} of "
                              f"{published.code}: new subscribers get it; those of version "
                              f"{plan.version} keep theirs until moved (the action “Move "
                              "subscribers to the current version”). It is on sale through "
                              "Stripe once synced (the action “Sync selected to Stripe”).",
                              messages.SUCCESS)  # fmt: skip
        else:
            self.message_user(request, f"{published.name} was saved.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:catalog_plan_change", args=[published.pk]))

    @admin.action(description="Move subscribers to the current version", permissions=["change"])
    def move_to_current_version(self, request, queryset):
        earlier = [p for p in queryset.order_by("code", "version") if not p.current]
        if not earlier:
            self.message_user(request, "Pick earlier versions: their subscribers move to the "
                              "current version of their plan.", messages.WARNING)  # fmt: skip
            return None
        form = MoveForm(request.POST if "_move" in request.POST else None)
        if form.is_valid():
            when = form.cleaned_data["when"]
            for plan in earlier:
                result = move_subscribers(from_plan=plan, to_plan=version_of(code=plan.code),
                                          when=when, acting_user=request.user)  # fmt: skip
                level = messages.ERROR if result.failed else messages.SUCCESS
                self.message_user(request, f"{plan.label}: {result.describe()}", level)
            return None
        previews = [
            preview_move(from_plan=p, to_plan=version_of(code=p.code), when=WHEN[0])
            for p in earlier
        ]
        return TemplateResponse(request, "admin/catalog/plan/move.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Move subscribers to the current version",
            "previews": previews,
            "form": form,
            "selected": [p.pk for p in earlier],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })  # fmt: skip

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
