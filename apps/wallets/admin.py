"""Finance screens: wallets with their grants and recent entries, the ledger, and the staff
corrections (grant, claw back, void), each through the ledger services with a reason."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.accounts.models import Account
from apps.core import clock
from apps.core.admin import (
    QUANTITY,
    ExportMixin,
    HumanNumbers,
    LargeTableAdmin,
    PageView,
    add_to_page,
)
from apps.core.errors import DomainError
from apps.core.humanize import credits

from .exports import LEDGER_COLUMNS
from .forms import ClawBackForm, GrantCreditsForm, VoidGrantForm
from .models import CreditGrant, LedgerEntry, Reservation, Wallet
from .services import adjust, grant_credits, void_grant

RECENT_ENTRIES = 25


def ledger_form_page(model_admin, request, *, title, action, form, crumbs, summary, back):
    """A staff correction form (admin/wallets/ledger_form.html): `crumbs` are (label, URL)
    pairs after Home, `summary` the balances it changes, `back` where Cancel goes."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "action": action,
        "form": form,
        "crumbs": crumbs,
        "summary": summary,
        "back": back,
    }
    return TemplateResponse(request, "admin/wallets/ledger_form.html", context)


def balance_summary(wallet):
    text = (
        f"Balance {credits(wallet.balance)}, held {credits(wallet.held)}, available "
        f"{credits(wallet.available)}"
    )
    return text + (f", overage debt {credits(wallet.debt)}." if wallet.debt else ".")


def wallet_form_page(model_admin, request, wallet, form, title, action=None):
    page = reverse("admin:wallets_wallet_change", args=[wallet.pk])
    return ledger_form_page(
        model_admin,
        request,
        title=f"{title}: {wallet}",
        action=action or title,
        form=form,
        crumbs=[("Wallets", reverse("admin:wallets_wallet_changelist")), (str(wallet), page)],
        summary=balance_summary(wallet),
        back=page,
    )


class GrantInline(HumanNumbers, admin.TabularInline):
    model = CreditGrant
    fields = ["source", "amount", "remaining", "expires_at", "priority", "unit_price",
              "currency", "reference", "api_key", "voided_at", "void_link"]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-remaining", "priority", "expires_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("api_key")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="")
    def void_link(self, grant):
        if grant.remaining > 0:
            url = reverse("admin:wallets_creditgrant_void", args=[grant.pk])
            return format_html('<a class="button" href="{}">Void…</a>', url)
        return ""


@admin.register(Wallet)
class WalletAdmin(LargeTableAdmin):
    list_display = ["account", "credit_type", "balance", "held", "available", "debt", "updated_at"]
    list_filter = ["credit_type"]
    list_select_related = ["account", "credit_type"]
    search_fields = ["=account__external_id", "account__name"]
    fields = ["account", "credit_type", "balance", "held", "available", "debt", "updated_at",
              "recent_entries"]  # fmt: skip
    readonly_fields = fields
    inlines = [GrantInline]

    @admin.display(description="Available", ordering=F("balance") - F("held"))
    def available(self, wallet):
        return credits(wallet.available)

    @admin.display(description=f"Last {RECENT_ENTRIES} ledger entries")
    def recent_entries(self, wallet):
        entries = wallet.ledger_entries.select_related("acting_user").order_by("-id")[
            :RECENT_ENTRIES
        ]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.kind,
                    credits(e.amount),
                    credits(e.balance_after),
                    e.grant_id or "",
                    e.acting_user or "",
                    e.reason,
                )  # fmt: skip
                for e in entries
            ),
        )
        url = reverse("admin:wallets_ledgerentry_changelist") + f"?wallet__id__exact={wallet.pk}"
        return format_html(
            "<table><thead><tr><th>When</th><th>Kind</th><th>Amount</th><th>Balance after</th>"
            "<th>Grant</th><th>By</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All entries of this wallet →</a></p>',
            rows,
            url,
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/grant/", view(self.grant_view), name="wallets_wallet_grant"),
            path("<int:pk>/claw-back/", view(self.claw_back_view), name="wallets_wallet_claw_back"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_grant": request.user.has_perm("wallets.grant_credits"),
            "can_claw_back": request.user.has_perm("wallets.claw_back_credits"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def grant_view(self, request, pk):
        def apply(wallet, data):
            grant_credits(
                account=wallet.account,
                credit_type=wallet.credit_type,
                amount=data["amount"],
                source=data["source"],
                expires_at=data["expires_at"],
                priority=data["priority"],
                reason=data["reason"],
                acting_user=request.user,
            )
            return f"Granted {credits(data['amount'])}."

        return self._correction(
            request, pk, "wallets.grant_credits", GrantCreditsForm, "Grant credits", apply
        )

    def claw_back_view(self, request, pk):
        def apply(wallet, data):
            adjust(
                account=wallet.account,
                credit_type=wallet.credit_type,
                amount=-data["amount"],
                reason=data["reason"],
                acting_user=request.user,
            )
            return f"Clawed back {credits(data['amount'])}."

        return self._correction(
            request, pk, "wallets.claw_back_credits", ClawBackForm, "Claw back credits", apply
        )

    def _correction(self, request, pk, permission, form_class, title, apply):
        """A staff correction form: on a valid POST run `apply` (a ledger service); a domain
        error becomes a form error and nothing is written."""
        wallet = self._wallet_for(request, pk, permission)
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                done = apply(wallet, form.cleaned_data)
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, done, messages.SUCCESS)
                return redirect("admin:wallets_wallet_change", wallet.pk)
        return wallet_form_page(self, request, wallet, form, title)

    def _wallet_for(self, request, pk, permission):
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return get_object_or_404(Wallet.objects.select_related("account", "credit_type"), pk=pk)


@admin.register(CreditGrant)
class CreditGrantAdmin(LargeTableAdmin):
    list_display = ["id", "account", "credit_type", "source", "amount", "remaining",
                    "expires_at", "unit_price", "currency", "reference", "api_key",
                    "created_at"]  # fmt: skip
    list_filter = ["source", "wallet__credit_type", "expires_at", "created_at"]
    list_select_related = ["account", "wallet__credit_type", "api_key"]
    search_fields = ["=account__external_id", "=reference"]

    @admin.display(description="Credit type", ordering="wallet__credit_type__code")
    def credit_type(self, grant):
        return grant.wallet.credit_type.code

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/void/", view(self.void_view), name="wallets_creditgrant_void"),
            *super().get_urls(),
        ]

    def void_view(self, request, pk):
        if not request.user.has_perm("wallets.claw_back_credits"):
            raise PermissionDenied
        grant = get_object_or_404(
            CreditGrant.objects.select_related("wallet__account", "wallet__credit_type"), pk=pk
        )
        form = VoidGrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                void_grant(
                    grant=grant, reason=form.cleaned_data["reason"], acting_user=request.user
                )
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, f"Voided what was left of grant #{grant.pk}.")
                return redirect("admin:wallets_wallet_change", grant.wallet_id)
        title = f"Void grant #{grant.pk} ({credits(grant.remaining)} left)"
        return wallet_form_page(self, request, grant.wallet, form, title, action="Void grant")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ExportMixin, LargeTableAdmin):
    export_columns = LEDGER_COLUMNS
    list_display = ["id", "created_at", "account", "credit_type", "kind", "amount",
                    "balance_after", "held_change", "grant_id", "usage_event_id", "acting_user",
                    "reason"]  # fmt: skip
    list_filter = ["kind", "wallet__credit_type", "created_at"]
    list_select_related = ["account", "wallet__credit_type", "acting_user"]
    search_fields = ["=account__external_id"]
    ordering = ["-id"]

    @admin.display(description="Credit type")
    def credit_type(self, entry):
        return entry.wallet.credit_type.code


@admin.register(Reservation)
class ReservationAdmin(LargeTableAdmin):
    list_display = ["id", "account", "feature", "credits_held", "status", "expires_at",
                    "created_at", "closed_at"]  # fmt: skip
    list_filter = ["status", "expires_at"]
    list_select_related = ["account", "feature"]
    search_fields = ["=account__external_id", "=idempotency_key"]
    number_kinds = {"quantity": QUANTITY}  # units of the feature, not credits


class AccountWalletInline(HumanNumbers, admin.TabularInline):
    """The account page's balances: one row per credit type, linked to the wallet's page."""

    model = Wallet
    verbose_name = "balance"
    verbose_name_plural = "balances"
    fields = ["credit_type", "balance", "held", "available", "debt", "active_grants"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        now = clock.now()
        active = (
            Q(grants__remaining__gt=0, grants__voided_at__isnull=True)
            & (Q(grants__expires_at__isnull=True) | Q(grants__expires_at__gt=now))
        )  # fmt: skip
        return (
            super()
            .get_queryset(request)
            .select_related("credit_type")
            .annotate(_active_grants=Count("grants", filter=active))
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Available")
    def available(self, wallet):
        return credits(wallet.available)

    @admin.display(description="Active grants")
    def active_grants(self, wallet):
        url = reverse("admin:wallets_creditgrant_changelist") + f"?wallet__id__exact={wallet.pk}"
        return format_html('<a href="{}">{}</a>', url, wallet._active_grants)


def grant_to_account(account_admin, request, object_id):
    """The account page's "Grant credits": free credits of any credit type; the grant makes
    the wallet if the account has none of that type yet."""
    if not request.user.has_perm("wallets.grant_credits"):
        raise PermissionDenied
    account = get_object_or_404(Account, pk=object_id)
    page = reverse("admin:accounts_account_change", args=[account.pk])
    form = GrantCreditsForm(request.POST or None, choose_credit_type=True)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            grant_credits(
                account=account,
                credit_type=data["credit_type"],
                amount=data["amount"],
                source=data["source"],
                expires_at=data["expires_at"],
                priority=data["priority"],
                reason=data["reason"],
                acting_user=request.user,
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            account_admin.message_user(
                request,
                f"Granted {credits(data['amount'])} ({data['credit_type']}) to {account}.",
                messages.SUCCESS,
            )
            return redirect(page)
    return ledger_form_page(
        account_admin,
        request,
        title=f"Grant credits: {account}",
        action="Grant credits",
        form=form,
        crumbs=[("Accounts", reverse("admin:accounts_account_changelist")), (str(account), page)],
        summary="",
        back=page,
    )


add_to_page(Account, inline=AccountWalletInline)
add_to_page(
    Account,
    view=PageView(
        name="grant_credits",
        route="grant-credits",
        label="Grant credits…",
        permission="wallets.grant_credits",
        view=grant_to_account,
    ),
)
