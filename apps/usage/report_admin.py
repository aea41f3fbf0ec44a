"""The admin's "Reports" section (docs/reports.md): one page per usage report, for Pricing and
Finance. Each report is a proxy model (apps/usage/models.py) whose changelist renders the
report, so it has an admin URL, its own view permission and a row in the permission table;
it has no objects, adds, changes or deletes. The figures come from apps/usage/reports.py;
this module only reads the filters and lays the figures out as charts
(templates/admin/reports/_chart.html: a canvas plus the same figures as a table)."""

from datetime import timedelta
from decimal import Decimal
from functools import partial

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.catalog.models import CreditType
from apps.core import clock
from apps.core.admin import ReadOnlyAdmin
from apps.core.charts import Chart, Series
from apps.core.humanize import credits, group_digits
from apps.core.replicas import reads_from_replica

from . import reports
from .models import (
    CreditFlowReport,
    FeatureUsageReport,
    PlanFitReport,
    QuotaReport,
    TopAccountsReport,
)

MAX_DAYS = 366  # the per-day report scans events by date (apps/usage/reports.py)


# --- Charts ----------------------------------------------------------------------------------


def count(value):
    return group_digits(value)


def percent(value):
    return f"{group_digits(Decimal(value).quantize(Decimal('0.1')))} %"


def credits_of(credit_type_name):
    """`credits` in the credit type's own word ("1,200 GPU minutes")."""
    unit = credit_type_name.lower()
    return credits if unit == "credits" else partial(credits, unit=credit_type_name)


# --- Filters ---------------------------------------------------------------------------------


def _credit_type_field():
    return forms.ModelChoiceField(
        queryset=CreditType.objects.all(), required=False, empty_label="All credit types"
    )


def _month_field():
    return forms.DateField(
        input_formats=["%Y-%m"], widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m")
    )


class DateRangeFilter(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    credit_type = _credit_type_field()

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and not start <= end <= start + timedelta(days=MAX_DAYS - 1):
            raise forms.ValidationError(
                f"Pick an end on or after the start, {MAX_DAYS} days at most."
            )
        return data


class MonthFilter(forms.Form):
    month = _month_field()


class MonthCreditTypeFilter(MonthFilter):
    credit_type = _credit_type_field()


def _filters(form_class, request, defaults):
    """The bound form when the page was filtered, else one showing the defaults; and the
    values to report on (the defaults when the filter is invalid; the form shows why)."""
    if not request.GET:
        return form_class(initial=defaults), defaults
    form = form_class(request.GET)
    return form, ({**defaults, **form.cleaned_data} if form.is_valid() else defaults)


# --- Pages -----------------------------------------------------------------------------------


class ReportAdmin(ReadOnlyAdmin):
    """A report page in place of the changelist; the object pages lead back to it."""

    actions = None
    question = ""  # what the report answers, shown above it

    def report(self, request):
        """`(filter form, [Chart])` for the page."""
        raise NotImplementedError

    @reads_from_replica
    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, charts = self.report(request)
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": opts.verbose_name[:1].upper() + opts.verbose_name[1:],
            "question": self.question,
            "form": form,
            "charts": charts,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/reports/report.html", context)

    def _to_report(self, request):
        if request.method != "GET" or not self.has_view_permission(request):
            raise PermissionDenied
        opts = self.model._meta
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_changelist")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._to_report(request)

    def history_view(self, request, object_id, extra_context=None):
        return self._to_report(request)


def _account_links(request, account_ids):
    """Account pages for those who may open them (Pricing may not)."""
    if not request.user.has_perm("accounts.view_account"):
        return []
    return [reverse("admin:accounts_account_change", args=[pk]) for pk in account_ids]


def _today():
    return clock.now().date()


@admin.register(FeatureUsageReport)
class FeatureUsageReportAdmin(ReportAdmin):
    question = "Which features are used how much, day by day: credits and units, by feature."

    def report(self, request):
        today = _today()
        defaults = {"start": today - timedelta(days=29), "end": today, "credit_type": None}
        form, f = _filters(DateRangeFilter, request, defaults)
        rows = reports.feature_usage_by_day(
            start=f["start"], end=f["end"], credit_type=f["credit_type"]
        )
        if not rows:
            return form, []
        days = [f["start"] + timedelta(days=n) for n in range((f["end"] - f["start"]).days + 1)]
        features = {row.feature_code: row for row in rows}  # code -> a row, for names
        by_key = {(row.day, row.feature_code): row for row in rows}
        zero = Decimal(0)

        def series(attr, label, show):
            return [
                Series(
                    label(features[code]),
                    [
                        getattr(by_key[day, code], attr) if (day, code) in by_key else zero
                        for day in days
                    ],  # fmt: skip
                    show,
                )
                for code in sorted(features)
            ]

        labels = [day.isoformat() for day in days]
        return form, [
            Chart(
                id="credits-per-day",
                title="Credits used per day, by feature",
                label_header="Day (UTC)",
                labels=labels,
                series=series("credits", lambda r: r.feature_name, credits),
                stacked=True,
            ),
            Chart(
                id="units-per-day",
                title="Units used per day, by feature",
                label_header="Day (UTC)",
                labels=labels,
                series=series("units", lambda r: f"{r.feature_name} ({r.unit_name})", count),
                stacked=True,
            ),
        ]


@admin.register(PlanFitReport)
class PlanFitReportAdmin(ReportAdmin):
    question = (
        "How well do plan sizes fit: accounts on each plan by the share of their included "
        "credits they used in the month."
    )

    def report(self, request):
        form, f = _filters(MonthFilter, request, {"month": _today().replace(day=1)})
        return form, [
            Chart(
                id=f"fit-{n}",
                title=f"{fit.plan_name}: {fit.credit_type_code} used ÷ included, "
                f"{f['month']:%B %Y} ({count(fit.accounts)} accounts)",
                label_header="Used ÷ included",
                labels=list(reports.FIT_LABELS),
                series=[Series("Accounts", list(fit.counts), count)],
            )
            for n, fit in enumerate(reports.plan_fit(month=f["month"]))
        ]


@admin.register(TopAccountsReport)
class TopAccountsReportAdmin(ReportAdmin):
    question = "Which accounts used the most credits in the month."

    def report(self, request):
        defaults = {"month": _today().replace(day=1), "credit_type": None}
        form, f = _filters(MonthCreditTypeFilter, request, defaults)
        top = reports.top_accounts(month=f["month"], credit_type=f["credit_type"])
        if not top:
            return form, []
        kind = f["credit_type"].name if f["credit_type"] else "Credits"
        return form, [
            Chart(
                id="top-accounts",
                title=f"Top {len(top)} accounts by {kind.lower()} used, {f['month']:%B %Y}",
                label_header="Account",
                labels=[f"{a.name} ({a.external_id})" for a in top],
                series=[Series(f"{kind} used", [a.credits for a in top], credits_of(kind))],
                horizontal=True,
                links=_account_links(request, [a.account_id for a in top]),
            )
        ]


@admin.register(QuotaReport)
class QuotaReportAdmin(ReportAdmin):
    question = (
        f"Which accounts have used {percent(reports.NEAR_QUOTA * 100)} or more of a feature's "
        "quota (limit per period) in their current period."
    )

    def report(self, request):
        near = reports.near_quota()
        if not near:
            return None, []
        return None, [
            Chart(
                id="near-quota",
                title="Share of the quota used this period",
                label_header="Account · feature",
                labels=[f"{q.name} ({q.external_id}) · {q.feature_code}" for q in near],
                series=[
                    Series("Quota used", [q.share * 100 for q in near], percent),
                    Series("Used", [q.used for q in near], count, charted=False),
                    Series("Limit per period", [q.limit for q in near], count, charted=False),
                    Series("Unit", [q.unit_name for q in near], str, charted=False),
                    Series(
                        "Period since",
                        [q.period_start for q in near],
                        lambda moment: f"{moment:%Y-%m-%d}",
                        charted=False,
                    ),
                ],
                horizontal=True,
                links=_account_links(request, [q.account_id for q in near]),
            )
        ]


@admin.register(CreditFlowReport)
class CreditFlowReportAdmin(ReportAdmin):
    question = (
        "How many credits were granted, consumed and expired each month over the last "
        f"{reports.FLOW_MONTHS} months, by credit type."
    )

    def report(self, request):
        flows = reports.credit_flow(until_month=_today())
        names = dict(CreditType.objects.values_list("code", "name"))
        charts = []
        for code, months in flows.items():
            name = names.get(code, code)
            show = credits_of(name)
            charts.append(
                Chart(
                    id=f"flow-{code}",
                    title=f"{name}: granted, consumed and expired per month",
                    label_header="Month",
                    labels=[f"{m.month:%b %Y}" for m in months],
                    series=[
                        Series("Granted", [m.granted for m in months], show),
                        Series("Consumed", [m.consumed for m in months], show),
                        Series("Expired", [m.expired for m in months], show),
                    ],
                )
            )
        return None, charts


# --- The "Reports" section of the admin index ------------------------------------------------

REPORTS = (
    FeatureUsageReport,
    PlanFitReport,
    TopAccountsReport,
    QuotaReport,
    CreditFlowReport,
)


def _with_reports_section(get_app_list):
    """The admin index and sidebar list the report pages under their own "Reports" heading
    rather than among the usage app's tables (the usage app's own page still lists them)."""

    def app_list(request, app_label=None):
        apps = get_app_list(request, app_label)
        if app_label is not None:
            return apps
        names = {model._meta.object_name for model in REPORTS}
        found = []
        for app in apps:
            if app["app_label"] == "usage":
                found = [m for m in app["models"] if m["object_name"] in names]
                app["models"] = [m for m in app["models"] if m["object_name"] not in names]
        apps = [app for app in apps if app["models"]]
        if found:
            order = [model._meta.object_name for model in REPORTS]
            found.sort(key=lambda m: order.index(m["object_name"]))
            apps.append({
                "name": "Reports",
                "app_label": "reports",
                "app_url": found[0]["admin_url"],
                "has_module_perms": True,
                "models": found,
            })  # fmt: skip
        return apps

    return app_list


admin.site.get_app_list = _with_reports_section(admin.site.get_app_list)
