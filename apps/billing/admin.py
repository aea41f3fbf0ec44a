from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from djstripe.admin.views import ConfirmCustomAction

from apps.accounts.models import Account
from apps.catalog.models import Plan
from apps.core.admin import ExportMixin, LargeTableAdmin, PageView, add_to_page
from apps.core.errors import DomainError
from apps.core.exports import DATETIME, DECIMAL, ID, MONEY, NUMBER, Column
from apps.core.history import REASON_MAX_LENGTH, change_reason
from apps.core.humanize import money

from .checkout import set_cancel_at_period_end
from .models import OverageCharge, Purchase
from .plan_changes import (
    NOW,
    WHEN,
    change_account_plan,
    choices_of_when,
    describe_plan_change,
    live_subscription_of,
    plan_label,
)

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


# --- the account page's plan: put on a plan or change it, cancel at period end, resume ------
# (docs/periods.md, "Plan changes"). Added to the account's page from here: the changes go
# through apps/billing (Stripe's switch) and apps/periods, which sit above apps/accounts.

PLAN_PERMISSION = "accounts.change_subscription"  # Finance's: "manages accounts and plans"
REASON_HELP = "Kept in the subscription's history with your name. Say why, e.g. the ticket."


def _reason_field():
    return forms.CharField(max_length=REASON_MAX_LENGTH, help_text=REASON_HELP)


class PlanChangeForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), help_text="Active plans.")
    when = forms.ChoiceField(widget=forms.RadioSelect)
    reason = _reason_field()

    def __init__(self, *args, live, **kwargs):
        super().__init__(*args, **kwargs)
        plans = self.fields["plan"]
        plans.queryset = Plan.objects.filter(current=True, active=True).order_by("price", "code")
        plans.label_from_instance = lambda plan: f"{plan_label(plan)} [{plan.code}]"
        if live is not None:
            plans.initial = live.plan_id
        choices = choices_of_when(live)
        self.fields["when"].choices = [(choice, WHEN[choice]) for choice in choices]
        self.fields["when"].initial = choices[0]
        if live is not None and live.stripe_subscription_id:
            self.fields["when"].help_text = "A Stripe subscription changes at its period end."
        elif live is None:
            self.fields["when"].help_text = "No plan yet: it starts now."


class ReasonForm(forms.Form):
    reason = _reason_field()


def _account_for(account_admin, request, object_id):
    if not request.user.has_perm(PLAN_PERMISSION):
        raise PermissionDenied
    account = account_admin.get_object(request, unquote(object_id))  # None for a bad id too
    if account is None:
        raise Http404("No such account.")
    return account


def _plan_page(account_admin, request, account, *, title, form, action, summary=(), steps=(),
               confirming=False):  # fmt: skip
    """admin/billing/account_plan.html: what will happen (`summary` rows, `steps`), then the
    form, or, `confirming`, the form's answers carried in hidden fields to *Confirm*."""
    page = reverse("admin:accounts_account_change", args=[account.pk])
    context = {
        **account_admin.admin_site.each_context(request),
        "opts": account_admin.opts,
        "title": f"{title}: {account}",
        "crumbs": [
            ("Accounts", reverse("admin:accounts_account_changelist")),
            (str(account), page),
        ],
        "summary": summary,
        "steps": steps,
        "form": form,
        "action": action,
        "confirming": confirming,
        "back": page,
    }
    return TemplateResponse(request, "admin/billing/account_plan.html", context)


def change_plan(account_admin, request, object_id):
    """*Put on plan / change plan…*: choose the plan, when and why; a confirmation page says
    what will happen (apps/billing/plan_changes.py), *Confirm* makes the change."""
    account = _account_for(account_admin, request, object_id)
    form = PlanChangeForm(request.POST or None, live=live_subscription_of(account))
    title = "Put on plan / change plan"
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        arguments = {"account": account, "plan": data["plan"], "when": data["when"]}
        try:
            change = describe_plan_change(**arguments)
            if "confirm" in request.POST:
                change_account_plan(**arguments, reason=data["reason"], acting_user=request.user)
        except DomainError as error:
            account_admin.message_user(request, error.message, messages.ERROR)
        else:
            if "confirm" in request.POST:
                account_admin.message_user(request, _done(account, change), messages.SUCCESS)
                return redirect("admin:accounts_account_change", account.pk)
            if "edit" not in request.POST:
                summary = [("Account", str(account)), ("Current plan", change.current),
                           ("New plan", change.new), ("When", change.when),
                           ("Through", "Stripe (settled by its webhook)" if change.through_stripe
                            else "CreditDesk (invoiced by hand, no Stripe)"),
                           ("Reason", data["reason"])]  # fmt: skip
                return _plan_page(account_admin, request, account, title=f"Confirm: {title}",
                                  form=form, action="Confirm", summary=summary,
                                  steps=change.steps, confirming=True)  # fmt: skip
    return _plan_page(account_admin, request, account, title=title, form=form, action="Next")


def _done(account, change):
    if change.through_stripe:
        return (
            f"{account}: changed at Stripe; {change.new} takes over when Stripe's invoice for "
            "the next period is paid (its webhook settles it here)."
        )
    if change.when == WHEN[NOW]:
        return f"{account} is on {change.new} from now; its first period's credits are granted."
    return f"{account}: {change.new} from the end of the current period."


def _cancel_or_resume(account_admin, request, object_id, *, cancel):
    account = _account_for(account_admin, request, object_id)
    live = live_subscription_of(account)
    verb = "Cancel at period end" if cancel else "Resume"
    if live is None or live.cancel_at_period_end == cancel:
        problem = (
            "The account has no plan."
            if live is None
            else "Its plan already ends at the period end."
            if cancel
            else "Its plan is not canceled: nothing to resume."
        )
        account_admin.message_user(request, f"{verb}: {problem}", messages.ERROR)
        return redirect("admin:accounts_account_change", account.pk)
    end = f"{live.current_period_end:%Y-%m-%d %H:%M} UTC"
    if cancel:
        steps = [
            f"At the period end ({end}) {plan_label(live.plan)} ends: what is left of its plan "
            "credits lapses without rolling over, and no new period is granted. Purchased and "
            "granted credits are not touched. *Resume* undoes it until then."
        ]
        if live.scheduled_plan_id:
            steps.append(f"The change to {live.scheduled_plan.name} at period end is dropped.")
    else:
        steps = [
            f"{plan_label(live.plan)} renews at the period end ({end}) again, and the period's "
            "plan credits roll over by the plan's terms as they stand now."
        ]
    if live.stripe_subscription_id:
        steps.insert(
            0,
            f"Through Stripe: Stripe's subscription {live.stripe_subscription_id} is changed; "
            "the subscription here follows when Stripe confirms (its webhook, a moment later).",
        )
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with change_reason(form.cleaned_data["reason"]):
                now = set_cancel_at_period_end(
                    subscription=live, cancel=cancel, acting_user=request.user
                )
        except DomainError as error:
            account_admin.message_user(request, error.message, messages.ERROR)
        else:
            done = "will end at its period end" if cancel else "resumed"
            said = f"{account}: the plan {done}." if now else (
                f"{account}: changed at Stripe; shown here once Stripe confirms (a moment)."
            )  # fmt: skip
            account_admin.message_user(request, said, messages.SUCCESS)
            return redirect("admin:accounts_account_change", account.pk)
    summary = [("Account", str(account)), ("Plan", plan_label(live.plan)),
               ("Period ends", end)]  # fmt: skip
    return _plan_page(account_admin, request, account, title=verb, form=form, action=verb,
                      summary=summary, steps=steps)  # fmt: skip


def cancel_plan(account_admin, request, object_id):
    """*Cancel plan at period end…*"""
    return _cancel_or_resume(account_admin, request, object_id, cancel=True)


def resume_plan(account_admin, request, object_id):
    """*Resume plan…* (undo a cancellation at period end)."""
    return _cancel_or_resume(account_admin, request, object_id, cancel=False)


for name, route, label, view in (
    ("change_plan", "change-plan", "Put on plan / change plan…", change_plan),
    ("cancel_plan", "cancel-plan", "Cancel plan at period end…", cancel_plan),
    ("resume_plan", "resume-plan", "Resume plan…", resume_plan),
):
    add_to_page(
        Account,
        view=PageView(name=name, route=route, label=label, permission=PLAN_PERMISSION, view=view),
    )
