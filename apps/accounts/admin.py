from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.billing.billing_page import billing_link
from apps.billing.checkout import set_cancel_at_period_end
from apps.billing.models import AutoRecharge
from apps.billing.subscriptions import release_renewal_hold
from apps.catalog.contracts import contract_state
from apps.core import clock
from apps.core.admin import ExtendablePage, HistoryAdmin, HumanNumbers
from apps.core.errors import DomainError
from apps.core.humanize import money

from .models import Account, ApiKey, Subscription
from .services import api_key_input_errors, create_api_key, revoke_api_key, set_account_status


class SubscriptionInline(HumanNumbers, admin.TabularInline):
    model = Subscription
    extra = 0
    fields = [
        "plan",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
    ]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class AutoRechargeInline(HumanNumbers, admin.StackedInline):
    """Auto-recharge terms (apps/billing/recharge.py): the card saved by a pack checkout
    buys the pack when available credits fall below the threshold."""

    model = AutoRecharge
    extra = 0
    max_num = 1
    autocomplete_fields = ["credit_pack"]
    fields = ["credit_pack", "threshold", "monthly_cap", "enabled", "armed", "last_result",
              "last_attempt_at"]  # fmt: skip
    readonly_fields = ["armed", "last_result", "last_attempt_at"]

    @admin.display(description="Monthly cap", ordering="monthly_cap")
    def monthly_cap_human(self, recharge):
        return money(recharge.monthly_cap, recharge.credit_pack.currency)


@admin.register(Account)
class AccountAdmin(ExtendablePage, HistoryAdmin):
    """An account's page: its details, subscriptions and auto-recharge, and what the wallets'
    admin adds to it (balances per credit type, "Grant credits") and the billing admin's (put
    on plan / change plan, cancel at period end, resume)."""

    list_display = ["external_id", "name", "email", "status", "plan", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["external_id", "name", "email"]
    # Status moves only through the actions (set_account_status also ends a suspension for
    # nonpayment), never by editing the field or reverting to an old row.
    readonly_fields = ["status", "contract_terms", "billing_page", "revenue_statement",
                       "created_at", "updated_at"]  # fmt: skip
    inlines = [SubscriptionInline, AutoRechargeInline]
    actions = ["suspend", "reactivate"]
    show_full_result_count = False  # no COUNT(*) over a large table on every page
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        plan = Subscription.objects.filter(
            account=OuterRef("pk"), status__in=Subscription.LIVE_STATUSES
        ).values("plan__code")[:1]
        return super().get_queryset(request).annotate(_plan=Subquery(plan))

    def get_readonly_fields(self, request, obj=None):
        """The billing link lets whoever holds it buy and switch plans for the customer: only
        staff who may change the account get one."""
        fields = super().get_readonly_fields(request, obj)
        hidden = set()
        if not self.has_change_permission(request, obj):
            hidden.add("billing_page")
        if not request.user.has_perm("revenue.view_revenuemonth"):
            hidden.add("revenue_statement")
        # *Add a contract* only for staff who may add one.
        swap = {} if request.user.has_perm("catalog.add_contract") else {
            "contract_terms": "contract_read_only"}  # fmt: skip
        return [swap.get(field, field) for field in fields if field not in hidden]

    @admin.display(description="Contract")
    def contract_terms(self, account):
        """The account's own terms (apps/catalog/contract_admin.py): state and window linked
        to the contract, or *Add a contract*."""
        return self._contract(account, may_add=True)

    @admin.display(description="Contract")
    def contract_read_only(self, account):
        return self._contract(account, may_add=False)

    def _contract(self, account, *, may_add):
        contract = getattr(account, "contract", None) if account.pk else None
        if contract is None:
            if not (may_add and account.pk):
                return "none"
            url = reverse("admin:catalog_contract_add") + f"?account={account.pk}"
            return format_html('none · <a href="{}">Add a contract</a>', url)
        ends = f"{contract.ends_at:%Y-%m-%d %H:%M}" if contract.ends_at else "until removed"
        return format_html(
            '<a href="{}">{} · {} → {} UTC</a>',
            reverse("admin:catalog_contract_change", args=[contract.pk]),
            contract_state(contract, clock.now()),
            f"{contract.starts_at:%Y-%m-%d %H:%M}",
            ends,
        )

    @admin.display(description="Billing page")
    def billing_page(self, account):
        """A fresh link to the customer's hosted billing page, for support on the phone."""
        if account.pk is None:
            return "—"
        link = billing_link(account=account)
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer">Open as the customer sees '
            "it</a> (a new link each time; it works for {} minutes)",
            link.url,
            settings.BILLING_LINK_MAX_AGE_MINUTES,
        )

    @admin.display(description="Revenue")
    def revenue_statement(self, account):
        """Finance's statement of the account (the revenue app's admin page, by URL name:
        accounts sits below revenue)."""
        if account.pk is None:
            return "—"
        url = reverse("admin:revenue_revenuemonth_statement", args=[account.pk])
        return format_html('<a href="{}">Revenue statement by month</a>', url)

    @admin.display(description="Plan", ordering="_plan")
    def plan(self, account):
        return account._plan or "—"

    @admin.action(
        description="Suspend selected accounts (blocks consumption)", permissions=["change"]
    )
    def suspend(self, request, queryset):
        self._set_status(request, queryset, Account.Status.SUSPENDED)

    @admin.action(description="Reactivate selected accounts", permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, Account.Status.ACTIVE)

    def _set_status(self, request, queryset, status):
        changed = sum(
            set_account_status(account=account, status=status, acting_user=request.user)
            for account in queryset
        )
        self.message_user(request, f"{changed} account(s) set to {status}.", messages.SUCCESS)


@admin.register(Subscription)
class SubscriptionAdmin(HistoryAdmin):
    list_display = [
        "account", "plan", "status", "current_period_start", "current_period_end",
        "cancel_at_period_end",
    ]  # fmt: skip
    list_filter = [
        "status", "plan", "cancel_at_period_end",
        ("renewal_held_since", admin.EmptyFieldListFilter),
    ]  # fmt: skip
    list_select_related = ["account", "plan"]
    search_fields = ["account__external_id", "account__name", "stripe_subscription_id"]
    readonly_fields = [
        "account", "plan", "status", "billing_anchor", "current_period_start",
        "current_period_end", "cancel_at_period_end", "scheduled_plan", "renewal_held_since",
        "stripe_subscription_id", "created_at", "updated_at",
    ]  # fmt: skip
    show_full_result_count = False
    actions = ["cancel_at_period_end", "resume", "release_renewal_hold"]

    # Periods move only through the services (docs/periods.md): they grant, roll over and
    # expire credits as they do. Accounts go on a plan through the API (PUT accounts/{id}) or
    # the account page's "Put on plan / change plan…" (added by apps/billing/admin.py).
    # So no add, no saving the change form, no history "revert" (it saves a whole old row).
    history_revert = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # the actions only

    @admin.action(
        description="Cancel at period end (plan credits lapse, no rollover)",
        permissions=["change"],
    )
    def cancel_at_period_end(self, request, queryset):
        self._each(request, queryset, True, "will end at their period end")

    @admin.action(description="Resume (undo cancel at period end)", permissions=["change"])
    def resume(self, request, queryset):
        self._each(request, queryset, False, "resumed")

    @admin.action(
        description="Release renewal hold (after settling a Stripe price mismatch)",
        permissions=["change"],
    )
    def release_renewal_hold(self, request, queryset):
        released = sum(
            release_renewal_hold(subscription=subscription, acting_user=request.user)
            for subscription in queryset
        )
        messages.success(
            request,
            f"{released} subscription(s) released: the renewal job catches up their periods, "
            "the held one too.",
        )

    def _each(self, request, queryset, cancel, done):
        # A Stripe subscription is changed at Stripe; its webhook then updates the row.
        here = at_stripe = 0
        for subscription in queryset.filter(status__in=Subscription.LIVE_STATUSES):
            try:
                changed = set_cancel_at_period_end(
                    subscription=subscription, cancel=cancel, acting_user=request.user
                )
            except DomainError as error:
                messages.error(request, f"{subscription.account}: {error.message}")
                continue
            here, at_stripe = here + changed, at_stripe + (not changed)
        if here:
            messages.success(request, f"{here} subscription(s) {done}.")
        if at_stripe:
            messages.success(
                request,
                f"{at_stripe} Stripe subscription(s) changed at Stripe: shown here once "
                "Stripe confirms (a moment).",
            )


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "account", "expires_at", "rate_limit_per_minute"]

    def clean(self):
        """The service's rules on add and on every edit: the account of a saved key is
        read-only, so an edit checks the scopes against the key's own account."""
        data = super().clean()
        data["scopes"] = sorted(set(data.get("scopes") or []))  # as create_api_key stores them
        editing = self.instance.pk is not None
        expires_at = data.get("expires_at")
        if editing and expires_at == self.instance.expires_at:
            expires_at = None  # an unchanged, already passed expiry is not a new problem
        for field, problems in api_key_input_errors(
            name=data.get("name"),
            scopes=data["scopes"],
            account=self.instance.account if editing else data.get("account"),
            expires_at=expires_at,
        ).items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(HistoryAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "scope_list",
        "account",
        "state",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["revoked_at", "expires_at"]
    list_select_related = ["account", "created_by"]
    search_fields = ["name", "prefix", "account__external_id"]
    autocomplete_fields = ["account"]
    actions = ["revoke"]
    history_revert = False  # a revert would un-revoke a key or restore scopes taken away

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "prefix",
            "account",
            "state",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

    @admin.display(description="Scopes")
    def scope_list(self, api_key):
        return ", ".join(api_key.scopes)

    @admin.display(description="State")
    def state(self, api_key):
        if api_key.revoked_at:
            return "revoked"
        return "active" if api_key.is_usable else "expired"

    def save_model(self, request, obj, form, change):
        if change:
            obj._history_user = request.user
            return super().save_model(request, obj, form, change)
        api_key, raw_key = create_api_key(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            account=form.cleaned_data.get("account"),
            expires_at=form.cleaned_data.get("expires_at"),
            created_by=request.user,
            rate_limit_per_minute=form.cleaned_data.get("rate_limit_per_minute"),
        )
        obj.pk = api_key.pk
        obj.refresh_from_db()
        obj._state.adding = False
        request._api_key_secret = raw_key

    def response_add(self, request, obj, post_url_continue=None):
        """Show the secret on this one response; it is stored nowhere, not even in a message."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_key": obj,
            "raw_key": request._api_key_secret,
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/accounts/apikey/created.html", context)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for api_key in queryset:
            revoke_api_key(api_key=api_key, acting_user=request.user)
        self.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)
