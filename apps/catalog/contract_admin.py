"""Finance's contract screens (docs/contracts.md). The form and its inlines only read what
staff typed; `put_contract` judges the terms and writes them, `remove_contract` deletes, so a
contract saved here is validated and recorded in its history exactly as through the API.
The service's problems come back as errors on the fields they are about."""

import re

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from apps.core import clock
from apps.core.admin import QUANTITY, HistoryAdmin, HumanNumbers
from apps.core.decimals import format_decimal
from apps.core.errors import InvalidInput
from apps.core.history import REASON_MAX_LENGTH
from apps.core.humanize import credits, credits_per, group_digits, money

from .contracts import contract_state, put_contract, remove_contract
from .models import Contract, ContractAllowance, ContractFeature

PLANS = "As on the plan"
DELETED_REASON = "deleted in the admin"
# Where a problem of the contract's body (its path) goes on the form.
FORM_FIELDS = {
    "starts_at": "starts_at",
    "ends_at": "ends_at",
    "price": "price",
    "currency": "currency",
    "overage.policy": "overage_policy",
    "overage.limit": "overage_limit",
    "overage.unit_price": "overage_unit_price",
}
FEATURE_PATH = re.compile(r"features\[(\d+)\]\.(\w+)$")
# The body's words in a message, as the form names them.
WORDS = {
    "starts_at": "the start",
    "ends_at": "the end",
    "policy is allow": "the overage policy is “allow”",
    "credits_per_unit": "credits per unit",
    "limit_per_period": "limit per period",
}


def readable(label, message):
    """A service message as a sentence about the field: `must be after starts_at` on *Ends
    at* reads `Ends at must be after the start.`"""
    for word, said in WORDS.items():
        message = message.replace(word, said)
    if label and message[:1].islower():
        message = f"{label} {message}"
    return message if message.endswith(".") else f"{message}."


def sorted_problems(details):
    """The service's `{path: [message]}` by where they go: the contract's fields, the feature
    rows (by their place in the body), the included credits (by credit type)."""
    found = {"form": [], "features": [], "allowances": []}
    for path, messages in details.items():
        for message in messages:
            if path in FORM_FIELDS:
                found["form"].append((FORM_FIELDS[path], message))
            elif match := FEATURE_PATH.match(path):
                found["features"].append((int(match[1]), match[2], message))
            elif path.startswith("included_credits."):
                found["allowances"].append((path.partition(".")[2], None, message))
            else:  # above the form, saying what it is about
                said = message if path == "non_field_errors" else f"{path}: {message}"
                found["form"].append((None, said))
    return found


def _problems(request, kind):
    return sorted_problems(getattr(request, "contract_problems", {}))[kind]


def _plain(value):
    return None if value is None else format_decimal(value)


class JudgedByTheService:
    """Only each field's own input is checked here (a date, a number); the model's checks are
    skipped, the service says the same in the body's words (and puts it on the field)."""

    def _post_clean(self):
        pass

    def put_problem(self, field, message):
        label = self.fields[field].label if field in self.fields else ""
        self.add_error(field if field in self.fields else None, readable(label, message))


class PlanOrYesNo(forms.NullBooleanSelect):
    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [("unknown", PLANS), ("true", "Yes"), ("false", "No")]


class ContractForm(JudgedByTheService, forms.ModelForm):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Kept in the contract's history with your name. Say why, e.g. the deal or "
        "the ticket.",
    )
    problems = ()  # the service's, when it refused the form as posted (ContractAdmin.get_form)

    class Meta:
        model = Contract
        fields = ["account", "starts_at", "ends_at", "price", "currency", "overage_policy",
                  "overage_limit", "overage_unit_price"]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "overage_policy" in self.fields:
            self.fields["overage_policy"].choices = [("", PLANS), *Contract._meta.get_field(
                "overage_policy").choices]  # fmt: skip

    def clean(self):
        data = super().clean()
        account = data.get("account")
        if self.instance.pk is None and account and hasattr(account, "contract"):
            self.add_error("account", "This account has a contract already: change that one "
                           "(a contract is replaced, never stacked).")  # fmt: skip
        for field, message in self.problems:
            self.put_problem(field, message)
        return data

    def body(self, features, allowances):
        """The contract in the body's vocabulary (apps/catalog/contracts.py): only the terms
        the form sets; `features` and `allowances` are the inlines' kept rows."""
        data = self.cleaned_data
        raw = {
            "starts_at": data["starts_at"].isoformat(),
            "ends_at": data["ends_at"].isoformat() if data.get("ends_at") else None,
        }
        if data.get("price") is not None:
            raw["price"] = _plain(data["price"])
        if data.get("currency"):
            raw["currency"] = data["currency"]
        if allowances:
            raw["included_credits"] = {
                row["credit_type"].code: _plain(row["credits_per_period"]) for row in allowances
            }
        if features:
            raw["features"] = [_feature_item(row) for row in features]
        overage = {
            "policy": data.get("overage_policy") or None,
            "limit": _plain(data.get("overage_limit")),
            "unit_price": _plain(data.get("overage_unit_price")),
        }
        if overage := {name: value for name, value in overage.items() if value is not None}:
            raw["overage"] = overage
        return raw


def _feature_item(row):
    item = {"feature": row["feature"].code}
    if row.get("enabled") is not None:
        item["enabled"] = row["enabled"]
    if row.get("credits_per_unit") is not None:
        item["credits_per_unit"] = _plain(row["credits_per_unit"])
    # A limit typed in sets the quota; "sets the quota" with no limit lifts the plan's.
    if row.get("sets_limit") or row.get("limit_per_period") is not None:
        item["limit_per_period"] = _plain(row.get("limit_per_period"))
    return item


class TermsForm(JudgedByTheService, forms.ModelForm):
    class Meta:
        widgets = {"enabled": PlanOrYesNo}


class TermsFormSet(BaseInlineFormSet):
    """A contract's rows of one kind; `problems` are the service's about them."""

    problems = ()

    def kept(self):
        """The rows the body lists, in order (a problem of `features[i]` is about row i)."""
        return [
            form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]

    def clean(self):
        super().clean()
        rows = self.kept()
        by_credit_type = {
            form.cleaned_data["credit_type"].code: form
            for form in rows
            if form.cleaned_data.get("credit_type")
        }
        for where, field, message in self.problems:
            form = rows[where] if isinstance(where, int) else by_credit_type.get(where)
            if form is not None:
                form.put_problem(field or "credits_per_period", message)


class TermsInline(HumanNumbers, admin.TabularInline):
    form = TermsForm
    formset = TermsFormSet
    extra = 0
    problems_kind = ""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.problems = _problems(request, self.problems_kind)
        return formset


class ContractFeatureInline(TermsInline):
    model = ContractFeature
    fields = ["feature", "enabled", "credits_per_unit", "sets_limit", "limit_per_period"]
    number_kinds = {"limit_per_period": QUANTITY}  # units of use, not credits
    verbose_name = "feature term"
    verbose_name_plural = "feature terms (empty: the plan's)"
    problems_kind = "features"


class ContractAllowanceInline(TermsInline):
    model = ContractAllowance
    fields = ["credit_type", "credits_per_period"]
    verbose_name = "included credits per period"
    verbose_name_plural = "included credits per period (instead of the plan's)"
    problems_kind = "allowances"


class StateFilter(admin.SimpleListFilter):
    """Live, scheduled or ended at the demo clock's now (apps/core/clock.py)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("scheduled", "Scheduled"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        now = clock.now()
        if self.value() == "scheduled":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "ended":
            return queryset.filter(ends_at__lte=now)
        if self.value() == "live":
            return queryset.filter(starts_at__lte=now).exclude(ends_at__lte=now)
        return queryset


@admin.register(Contract)
class ContractAdmin(HistoryAdmin):
    """An account's contract. Saving calls `put_contract` with the form's body and the reason
    (the history's *why*, with the user as *who*); deleting calls `remove_contract`."""

    form = ContractForm
    list_display = ["account", "state", "starts_at", "ends_at", "price_human", "overage_policy"]
    list_filter = [StateFilter, "currency", "overage_policy"]
    list_select_related = ["account"]
    search_fields = ["account__external_id", "account__name"]
    autocomplete_fields = ["account"]
    readonly_fields = ["state", "stripe_price_label", "created_at", "updated_at"]
    inlines = [ContractFeatureInline, ContractAllowanceInline]
    # A revert would save an old row around the service: no validation, no feature terms.
    history_revert = False
    history_list_display = ["window", "price_human", "overage", "terms"]
    fieldsets = [
        (None, {"fields": ["account", "state"]}),
        ("Window", {"fields": ["starts_at", "ends_at"]}),
        ("Price per period (empty: the plan's)",
         {"fields": ["price", "currency", "stripe_price_label"]}),
        ("Overage (empty: the plan's)",
         {"fields": ["overage_policy", "overage_limit", "overage_unit_price"]}),
        ("Why", {"fields": ["reason"]}),
        ("Changes", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]  # fmt: skip

    @admin.display(description="Stripe price")
    def stripe_price_label(self, contract):
        """Where a Stripe-backed subscription pays the contract's price (docs/contracts.md)."""
        if contract.stripe_price_id:
            return contract.stripe_price_id
        return "none: invoiced by hand, or not yet billed through Stripe"

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "account"] if obj is not None else fields

    def get_fieldsets(self, request, obj=None):
        """No *Why* on a page the user may only read (the reason is asked of a change), no
        state nor changes before there is a contract."""
        editing = self.has_change_permission(request, obj) if obj else True
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            fieldsets = [(None, {"fields": ["account"]}), *fieldsets[1:-1]]
        return [fs for fs in fieldsets if editing or fs[0] != "Why"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.problems = _problems(request, "form")
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """Without the admin's transaction: `put_contract` is one of its own (durable). When
        it refuses the contract nothing was written, and the form is shown again with the
        service's problems on its fields."""
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except InvalidInput as refused:
            request.contract_problems = refused.details
            return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        pass  # put_contract writes the contract with its rows (save_related)

    def save_related(self, request, form, formsets, change):
        rows = {formset.model: [f.cleaned_data for f in formset.kept()] for formset in formsets}
        account = form.instance.account if change else form.cleaned_data["account"]
        contract, _ = put_contract(
            account=account,
            raw=form.body(rows.get(ContractFeature, []), rows.get(ContractAllowance, [])),
            acting_user=request.user,
            reason=form.cleaned_data["reason"],
        )
        form.instance.pk = contract.pk
        form.instance.refresh_from_db()
        form.instance._state.adding = False

    def construct_change_message(self, request, form, formsets, add=False):
        said = "Added" if add else "Changed"
        return f"{said} through put_contract: {form.cleaned_data['reason']}"

    def delete_view(self, request, object_id, extra_context=None):
        # Without the admin's transaction: remove_contract is one of its own (durable).
        return self._delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        remove_contract(account=obj.account, acting_user=request.user,
                        reason=request.POST.get("reason") or DELETED_REASON)  # fmt: skip

    def delete_queryset(self, request, queryset):
        for contract in queryset.select_related("account"):
            self.delete_model(request, contract)

    @admin.display(description="State")
    def state(self, contract):
        return contract_state(contract, clock.now()) if contract.pk else "—"

    @admin.display(description="Price per period", ordering="price")
    def price_human(self, contract):
        return "the plan's" if contract.price is None else money(contract.price, contract.currency)

    @admin.display(description="Window")
    def window(self, contract):
        ends = f"{contract.ends_at:%Y-%m-%d %H:%M}" if contract.ends_at else "until removed"
        return f"{contract.starts_at:%Y-%m-%d %H:%M} → {ends} UTC"

    @admin.display(description="Overage")
    def overage(self, contract):
        if not (contract.overage_policy or contract.overage_limit is not None):
            return "the plan's"
        policy = contract.overage_policy or "the plan's policy"
        if contract.overage_limit is None:
            return policy
        return f"{policy}, up to {credits(contract.overage_limit)}"

    @admin.display(description="Feature terms and included credits")
    def terms(self, record):
        """As the change left them: `put_contract` saves the contract's row first, then
        replaces its rows, so they are the rows' history up to the contract's next change."""
        later = Contract.history.filter(id=record.id, history_id__gt=record.history_id)
        until = later.order_by("history_id").values_list("history_date", flat=True).first()
        rows = []
        for model in (ContractFeature, ContractAllowance):
            found = model.history.filter(contract_id=record.id)
            if until is not None:
                found = found.filter(history_date__lt=until)
            rows += [row for row in found.latest_of_each() if row.history_type != "-"]
        return "; ".join(sorted(_term(row) for row in rows)) or "the plan's"


def _term(row):
    """One feature term or included credits of a history row, as staff read it."""
    if hasattr(row, "credit_type_id"):
        return f"{row.credit_type.code}: {credits(row.credits_per_period)} / period"
    said = []
    if row.enabled is not None:
        said.append("on" if row.enabled else "off")
    if row.credits_per_unit is not None:
        said.append(credits_per(row.credits_per_unit, row.feature.unit_name))
    if row.sets_limit:
        limit = row.limit_per_period
        said.append("no quota" if limit is None else f"quota {group_digits(limit)}")
    return f"{row.feature.code}: {', '.join(said)}"
