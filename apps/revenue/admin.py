"""Finance's revenue pages: the revenue page (twelve months of one currency, with month close
and reopen), a month by credit type and by plan, the drill-down from a figure to the accounts
and grants behind it, and an account's statement. Figures come from selectors.py, closing
and reopening from services.py; this module only lays them out for people."""

from datetime import datetime
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from apps.accounts.models import Account
from apps.catalog.models import CreditType, Plan
from apps.core.admin import EXPORT_LABELS, HistoryAdmin, export_response, may_export
from apps.core.charts import Chart, Series
from apps.core.errors import DomainError
from apps.core.exports import FORMATS
from apps.core.humanize import credits, money
from apps.core.replicas import reads_from_replica

from .exports import schedule_chunks
from .models import RevenueMonth
from .months import months_back
from .selectors import (
    CREDITS,
    FEES,
    MONEY,
    Figures,
    account_statement,
    closed_months,
    currencies,
    figure_by_account,
    lines_behind,
    month_figures,
    series,
)
from .services import close_month, reopen_month

MONTHS_SHOWN = 12
ACCOUNTS_PER_PAGE = 50
NO_PLAN = "none"
EXPORT_BREAKDOWNS = ("credit_type", "plan")  # what the month page shows; by account: the command
# The columns of every figures table: (figure, heading); money or credits by the figure.
COLUMNS = [
    ("opening_deferred", "Opening deferred"),
    ("billed", "Billed"),
    ("recognised", "Recognised"),
    ("breakage", "Breakage"),
    ("refunded", "Refunds & claw-backs"),
    ("closing_deferred", "Closing deferred"),
    ("credits_granted", "Credits granted"),
    ("credits_used", "Credits used"),
    ("credits_expired", "Credits expired"),
    ("fees_billed", "Platform fees billed"),
    ("fees_recognised", "Platform fees recognised"),
    ("fees_deferred", "Platform fees deferred"),
]
HEADINGS = dict(COLUMNS)
BALANCES = {"opening_deferred", "closing_deferred"}  # no lines of their own: by account only
# Platform fees are the plans' (the month page has them by plan): no drill-down to grants.
NOT_DRILLED = frozenset(FEES)
STATEMENT = [
    ("billed", "Paid (billed)"),
    ("credits_granted", "Credits granted"),
    ("credits_used", "Credits used"),
    ("credits_expired", "Credits expired"),
    ("refunded", "Refunded"),
    ("credits_clawed_back", "Credits clawed back"),
    ("recognised", "Recognised"),
    ("breakage", "Breakage"),
    ("closing_deferred", "Deferred at month end"),
    ("fees_billed", "Platform fees paid"),
    ("fees_recognised", "Platform fees recognised"),
]


def show(figure, value, currency):
    return credits(value) if figure in CREDITS else money(value, currency)


def month_words(month):
    return f"{month:%B %Y}"


def day_words(moment):
    moment = timezone.localtime(moment)
    return f"{moment.day} {moment:%b %Y}"


class ReopenForm(forms.Form):
    # The service says when the reason is missing (one rule, one place).
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False,
        help_text="Recorded in the month's history.",
    )  # fmt: skip


class BadRequest(Exception):
    """A page asked for with a month, figure or account that is not one: back to the
    revenue page with the message."""


@admin.register(RevenueMonth)
class RevenueMonthAdmin(HistoryAdmin):
    """The changelist is the revenue page; months are closed and reopened only through the
    services, so the months themselves are never added, edited or reverted here."""

    actions = []
    history_revert = False
    readonly_fields = ["month", "closed", "closed_at", "closed_by", "reopened_at",
                       "reopened_by", "figures"]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        name = "revenue_revenuemonth"
        standard = super().get_urls()
        # "add/" must stay the admin's (refused), not be read as a month.
        add = [pattern for pattern in standard if pattern.name == f"{name}_add"]
        return [
            *add,
            path("account/<int:account_id>/", view(self.statement_view),
                 name=f"{name}_statement"),
            *(path(f"export.{fmt}", view(partial(self.export_view, fmt=fmt)),
                   name=f"{name}_export_{fmt}") for fmt in FORMATS),
            path("<str:month>/", view(self.month_view), name=f"{name}_month"),
            path("<str:month>/close/", view(self.close_view), name=f"{name}_close"),
            path("<str:month>/reopen/", view(self.reopen_view), name=f"{name}_reopen"),
            path("<str:month>/figure/<str:figure>/", view(self.drill_down_view),
                 name=f"{name}_drill_down"),
            path("<str:month>/figure/<str:figure>/account/<int:account_id>/",
                 view(self.grants_view), name=f"{name}_grants"),
            *standard,
        ]  # fmt: skip

    # --- the pages ---------------------------------------------------------------------

    @reads_from_replica
    def changelist_view(self, request, extra_context=None):
        self._may_view(request)
        try:
            month = self._month(request.GET.get("month")) if request.GET.get("month") else None
        except BadRequest as error:
            self.message_user(request, str(error), messages.ERROR)
            month = None
        month = month or timezone.localdate().replace(day=1)
        known = currencies()
        currency = request.GET.get("currency")
        currency = currency if currency in known else (known[0] if known else None)
        rows, chart = [], None
        if currency:
            months = months_back(month, MONTHS_SHOWN)
            found = series(first=months[0], last=month, currency=currency)
            closed = closed_months()
            for each in reversed(months):
                figures = found[each].get((currency,), Figures())
                rows.append(self._month_row(request, each, figures, currency, closed.get(each)))
            chart = _chart(months, found, currency)
        export = {"from": f"{months_back(month, MONTHS_SHOWN)[0]:%Y-%m}", "to": f"{month:%Y-%m}"}
        return self._page(request, "revenue.html", "Revenue", {
            "export_links": self._export_links(request, currency=currency, **export),
            "chart": chart,
            "currency": currency,
            "currencies": known,
            "month_value": f"{month:%Y-%m}",
            "headings": [heading for _, heading in COLUMNS],
            "rows": rows,
        })  # fmt: skip

    @reads_from_replica
    def month_view(self, request, month):
        self._may_view(request)
        try:
            month, currency = self._month(month), self._currency(request)
        except BadRequest as error:
            return self._back(request, error)
        tables = []
        for dimension, model, title in (("credit_type", CreditType, "By credit type"),
                                        ("plan", Plan, "By plan")):  # fmt: skip
            # Platform fees belong to plans: a credit type's table has no fee columns.
            columns = [c for c in COLUMNS if dimension == "plan" or c[0] not in FEES]
            found = month_figures(month=month, currency=currency, dimension=dimension)
            names = {o.pk: str(o) for o in model.objects.filter(pk__in=[k[1] for k in found])}
            rows = [
                {
                    "label": names.get(value, "No plan"),
                    "cells": self._cells(
                        month,
                        currency,
                        found[(currency, value)],
                        {dimension: NO_PLAN if value is None else value},
                        columns,
                    ),
                }  # fmt: skip
                for value in sorted(
                    {k[1] for k in found}, key=lambda v: (v is None, names.get(v, ""))
                )
            ]
            total = month_figures(month=month, currency=currency).get((currency,), Figures())
            tables.append({"title": title, "rows": rows,
                           "headings": [heading for _, heading in columns],
                           "total": self._cells(month, currency, total, {}, columns),
                           "export_links": self._export_links(
                               request, currency=currency, by=dimension,
                               **{"from": f"{month:%Y-%m}", "to": f"{month:%Y-%m}"})})  # fmt: skip
        return self._page(request, "month.html", f"Revenue in {month_words(month)}, {currency}", {
            "month": month, "currency": currency, "tables": tables,
        })  # fmt: skip

    @reads_from_replica
    def drill_down_view(self, request, month, figure):
        self._may_view(request)
        try:
            month, currency = self._month(month), self._currency(request)
            figure, filters, scope = self._figure(request, figure)
        except BadRequest as error:
            return self._back(request, error)
        if figure in BALANCES:
            by_account = series(first=month, last=month, currency=currency,
                                dimension="account", filters=filters)[month]  # fmt: skip
            rows = [
                {"account_id": key[1], "value": getattr(figures, figure)}
                for key, figures in sorted(by_account.items(), key=lambda item: item[0][1])
                if getattr(figures, figure)
            ]
        else:
            rows = figure_by_account(month=month, currency=currency, figure=figure,
                                     filters=filters)  # fmt: skip
        page = Paginator(rows, ACCOUNTS_PER_PAGE).get_page(request.GET.get("page"))
        accounts = Account.objects.in_bulk([row["account_id"] for row in page])
        query = self._query(currency, request, keep=("credit_type", "plan"))
        for row in page:
            row["account"] = accounts.get(row["account_id"])
            row["shown"] = show(figure, row["value"], currency)
            row["url"] = (
                reverse("admin:revenue_revenuemonth_statement", args=[row["account_id"]])
                + f"?currency={currency}"
                if figure in BALANCES
                else reverse("admin:revenue_revenuemonth_grants",
                             args=[f"{month:%Y-%m}", figure, row["account_id"]]) + query
            )  # fmt: skip
        title = f"{HEADINGS[figure]} in {month_words(month)}{scope}, {currency}: by account"
        return self._page(request, "drill_down.html", title, {
            "month": month, "currency": currency, "page": page, "balance": figure in BALANCES,
            "page_query": self._query(currency, request, keep=("credit_type", "plan"), sep="&"),
        })  # fmt: skip

    @reads_from_replica
    def grants_view(self, request, month, figure, account_id):
        self._may_view(request)
        try:
            month, currency = self._month(month), self._currency(request)
            figure, filters, scope = self._figure(request, figure)
            if figure in BALANCES:
                raise BadRequest("A balance has no grants of its own in a month.")
            account = self._account(account_id)
        except BadRequest as error:
            return self._back(request, error)
        lines = lines_behind(month=month, currency=currency, figure=figure, account=account.pk,
                             filters=filters)  # fmt: skip
        rows, total = [], 0
        column = "amount" if figure in MONEY else "credits"
        for line in lines:
            total += getattr(line, column)
            rows.append({
                "grant": line.grant,
                "url": reverse("admin:wallets_creditgrant_change", args=[line.grant_id]),
                "kind": line.get_kind_display(),
                "dated": month_words(line.dated_month) if line.dated_month != month else "",
                "shown": show(figure, getattr(line, column), currency),
            })  # fmt: skip
        title = f"{HEADINGS[figure]} in {month_words(month)}{scope}, {currency}: {account}"
        return self._page(request, "grants.html", title, {
            "month": month, "currency": currency, "rows": rows, "account": account,
            "total": show(figure, total, currency),
        })  # fmt: skip

    @reads_from_replica
    def statement_view(self, request, account_id):
        self._may_view(request)
        try:
            account = self._account(account_id)
        except BadRequest as error:
            return self._back(request, error)
        last = timezone.localdate().replace(day=1)
        tables = []
        for currency, months in account_statement(account=account.pk, last=last).items():
            totals = Figures()
            rows = []
            for month, figures in sorted(months.items(), reverse=True):
                for figure, _ in STATEMENT:
                    if figure != "closing_deferred":
                        setattr(totals, figure, getattr(totals, figure) + getattr(figures, figure))
                rows.append({
                    "label": month_words(month),
                    "url": reverse("admin:revenue_revenuemonth_month", args=[f"{month:%Y-%m}"])
                    + f"?currency={currency}",
                    "cells": [show(f, getattr(figures, f), currency) for f, _ in STATEMENT],
                })  # fmt: skip
            totals.closing_deferred = months[last].closing_deferred if months else 0
            tables.append({
                "currency": currency, "rows": rows,
                "total": [show(f, getattr(totals, f), currency) for f, _ in STATEMENT],
            })  # fmt: skip
        return self._page(request, "statement.html", f"Revenue statement: {account}", {
            "account": account, "tables": tables,
            "account_url": reverse("admin:accounts_account_change", args=[account.pk]),
            "headings": [heading for _, heading in STATEMENT],
        })  # fmt: skip

    def close_view(self, request, month):
        if not request.user.has_perm("revenue.close_month"):
            raise PermissionDenied
        try:
            month = self._month(month)
        except BadRequest as error:
            return self._back(request, error)
        if request.method == "POST":
            try:
                close_month(month=month, acting_user=request.user)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{month_words(month)} is closed.", messages.SUCCESS)
            return self._to_revenue_page(month)
        return self._page(request, "close.html", f"Close {month_words(month)}", {
            "month": month, "back": self._revenue_page_url(month),
        })  # fmt: skip

    def reopen_view(self, request, month):
        if not request.user.has_perm("revenue.reopen_month"):
            raise PermissionDenied
        try:
            month = self._month(month)
        except BadRequest as error:
            return self._back(request, error)
        form = ReopenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                reopen_month(month=month, acting_user=request.user,
                             reason=form.cleaned_data["reason"])  # fmt: skip
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{month_words(month)} is open again.",
                                  messages.SUCCESS)  # fmt: skip
                return self._to_revenue_page(month)
        return self._page(request, "reopen.html", f"Reopen {month_words(month)}", {
            "month": month, "form": form, "back": self._revenue_page_url(month),
        })  # fmt: skip

    def export_view(self, request, fmt):
        """The revenue schedule of a page's filters, as `revenue_report --format csv|json`
        writes it: `from` and `to` (months, default: the revenue page's twelve months),
        `currency` (default: the page's), `by` (credit_type or plan, as the month page)."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        try:
            last = self._month(request.GET.get("to") or f"{self._this_month():%Y-%m}")
            first = request.GET.get("from")
            first = self._month(first) if first else months_back(last, MONTHS_SHOWN)[0]
            if last < first:
                raise BadRequest("The last month of an export is before its first.")
            by = request.GET.get("by") or None
            if by not in (None, *EXPORT_BREAKDOWNS):
                raise BadRequest(f"“{by}” is not a breakdown of the revenue pages.")
            currency = self._currency(request)
        except BadRequest as error:
            return self._back(request, error)
        chunks = schedule_chunks(first=first, last=last, currency=currency, by=by, fmt=fmt)
        return export_response(chunks, name="revenue-schedule", fmt=fmt)

    def has_export_permission(self, request):
        return may_export(self, request)

    # --- helpers -----------------------------------------------------------------------

    def _export_links(self, request, **filters):
        if not self.has_export_permission(request) or not filters.get("currency"):
            return []
        query = "?" + urlencode({name: value for name, value in filters.items() if value})
        return [
            (label, reverse(f"admin:revenue_revenuemonth_export_{fmt}") + query)
            for fmt, label in EXPORT_LABELS.items()
        ]

    def _may_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _page(self, request, template, title, context):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "revenue_url": reverse("admin:revenue_revenuemonth_changelist"),
            **context,
        }
        return TemplateResponse(request, f"admin/revenue/revenuemonth/{template}", context)

    def _back(self, request, error):
        self.message_user(request, str(error), messages.ERROR)
        return redirect("admin:revenue_revenuemonth_changelist")

    def _revenue_page_url(self, month):
        return reverse("admin:revenue_revenuemonth_changelist") + f"?month={month:%Y-%m}"

    def _this_month(self):
        return timezone.localdate().replace(day=1)

    def _to_revenue_page(self, month):
        return redirect(self._revenue_page_url(month))

    def _month(self, text):
        try:
            return datetime.strptime(text, "%Y-%m").date()
        except (TypeError, ValueError):
            raise BadRequest(f"“{text}” is not a month (YYYY-MM).") from None

    def _currency(self, request):
        currency = request.GET.get("currency")
        known = currencies()
        if currency is None and known:
            return known[0]
        if currency not in known:
            raise BadRequest(f"No revenue in “{currency}”.")
        return currency

    def _figure(self, request, figure):
        """The figure, the filters of its credit type or plan, and words for them."""
        if figure not in HEADINGS or figure in NOT_DRILLED:
            raise BadRequest(f"“{figure}” is not a figure of the revenue page with grants "
                             "behind it.")  # fmt: skip
        filters, scope = {}, ""
        try:
            if request.GET.get("credit_type"):
                credit_type = CreditType.objects.get(pk=int(request.GET["credit_type"]))
                filters["credit_type_id"], scope = credit_type.pk, f", {credit_type}"
            if request.GET.get("plan") == NO_PLAN:
                filters["plan_id"], scope = None, f"{scope}, no plan"
            elif request.GET.get("plan"):
                plan = Plan.objects.get(pk=int(request.GET["plan"]))
                filters["plan_id"], scope = plan.pk, f"{scope}, {plan}"
        except (ValueError, CreditType.DoesNotExist, Plan.DoesNotExist):
            raise BadRequest("No such credit type or plan.") from None
        return figure, filters, scope

    def _account(self, account_id):
        account = Account.objects.filter(pk=account_id).first()
        if account is None:
            raise BadRequest(f"No account #{account_id}.")
        return account

    def _query(self, currency, request, *, keep=(), sep="?"):
        params = {"currency": currency}
        params |= {name: request.GET[name] for name in keep if request.GET.get(name)}
        return sep + urlencode(params)

    def _cells(self, month, currency, figures, scope, columns=COLUMNS):
        """A row's figures as (text, drill-down URL)."""
        query = "?" + urlencode({"currency": currency, **scope})
        return [
            (
                show(figure, getattr(figures, figure), currency),
                None
                if figure in NOT_DRILLED
                else reverse(
                    "admin:revenue_revenuemonth_drill_down", args=[f"{month:%Y-%m}", figure]
                )
                + query,
            )  # fmt: skip
            for figure, _ in columns
        ]

    def _month_row(self, request, month, figures, currency, record):
        key = f"{month:%Y-%m}"
        ended = month < self._this_month()
        row = {
            "label": month_words(month),
            "url": reverse("admin:revenue_revenuemonth_month", args=[key])
            + f"?currency={currency}",
            "cells": self._cells(month, currency, figures, {}),
            "status": "open",
        }
        if record is not None:
            who = record.closed_by.get_username() if record.closed_by else "?"
            row["status"] = f"closed {day_words(record.closed_at)} by {who}"
            if request.user.has_perm("revenue.reopen_month"):
                row["reopen_url"] = reverse("admin:revenue_revenuemonth_reopen", args=[key])
        elif ended and request.user.has_perm("revenue.close_month"):
            row["close_url"] = reverse("admin:revenue_revenuemonth_close", args=[key])
        return row


def _chart(months, found, currency):
    """The twelve months as bars: what was billed, recognised, lost to breakage and given
    back, with the deferred balance at each month's end listed beside them."""
    figures = [found[m].get((currency,), Figures()) for m in months]
    show = partial(money, currency=currency)
    return Chart(
        id="revenue-chart",
        title=f"Revenue in {currency}, {months[0]:%B %Y} to {months[-1]:%B %Y}",
        label_header="Month",
        labels=[f"{m:%b %Y}" for m in months],
        series=[
            Series("Billed", [f.billed for f in figures], show),
            Series("Recognised", [f.recognised for f in figures], show),
            Series("Breakage", [f.breakage for f in figures], show),
            Series("Refunds & claw-backs", [f.refunded for f in figures], show),
            Series("Platform fees recognised", [f.fees_recognised for f in figures], show),
            Series("Closing deferred", [f.closing_deferred for f in figures], show,
                   charted=False),
        ],
    )  # fmt: skip
