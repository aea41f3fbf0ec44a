"""The simulator for Pricing: a form to start a what-if, and a results page per run that can
be shared by its URL (progress while it runs, a cancel, totals, the distribution of the
change, the most affected accounts and a CSV of every line). Thin: apps/simulation/services
starts, runs and cancels; apps/simulation/report says what the figures are."""

import csv
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.db.models.functions import Abs
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.catalog.models import Plan
from apps.catalog.pricebook import dump_document
from apps.catalog.selectors import catalog_document
from apps.core import humanize
from apps.core.charts import Chart, Series
from apps.core.errors import InvalidInput
from apps.core.models import EXPORT_PERMISSION

from . import report
from .figures import Figures
from .models import SimulationRun
from .services import cancel_run, day_range, figures_of, last_full_month, start_run

MOST_AFFECTED = 20
# The distribution's buckets of the change in credits charged, in order.
BUCKETS = ["−50 % or less", "−50 to −10 %", "−10 to 0 %", "unchanged", "0 to 10 %",
           "10 to 50 %", "50 % or more", "nothing charged in reality"]  # fmt: skip


class SimulationForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="What you are trying, in a few words.")
    draft = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"}),
        help_text="The draft catalog (import_catalog format). It starts as the live catalog: "
        "change what you want to try.",
    )
    contracts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 100, "class": "vLargeTextField"}),
        help_text="Draft contracts, if any: account external id → contract body, in YAML, "
        'e.g. acme: {features: [{feature: api_call, credits_per_unit: "0.5"}]} '
        "(docs/contracts.md). Live over the whole range unless they say otherwise.",
    )
    first_day = forms.DateField(help_text="First day of the range replayed (UTC).")
    last_day = forms.DateField(help_text="Last day, included.")
    plan = forms.ChoiceField(required=False, help_text="Only the subscribers of this plan.")
    account_ids = forms.CharField(
        required=False,
        label="Account ids",
        help_text="Only these accounts: ids separated by commas.",
    )
    sample = forms.IntegerField(
        required=False, min_value=1, help_text="A random sample of this many of them."
    )
    seed = forms.IntegerField(initial=0, help_text="The same seed draws the same sample.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = Plan.objects.filter(current=True).order_by("code").values_list("code", "name")
        self.fields["plan"].choices = [("", "Everyone with credits or a plan")] + [
            (code, f"{name} ({code})") for code, name in codes
        ]

    def clean_account_ids(self):
        text = self.cleaned_data["account_ids"].strip()
        if not text:
            return None
        try:
            return [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError("Account ids are numbers separated by commas.") from None


@admin.register(SimulationRun)
class SimulationRunAdmin(admin.ModelAdmin):
    list_display = ("title", "status_shown", "progress", "range", "accounts", "created_by",
                    "created_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("title",)
    list_select_related = ("created_by",)

    # --- the list -------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_shown(self, run):
        return run.get_status_display()

    @admin.display(description="progress")
    def progress(self, run):
        return f"{run.accounts_done:,} of {run.accounts_total:,} accounts"

    @admin.display(description="usage replayed")
    def range(self, run):
        last = run.ends_at - timedelta(days=1)
        return f"{run.starts_at:%Y-%m-%d} to {last:%Y-%m-%d}"

    @admin.display(description="accounts")
    def accounts(self, run):
        return _selection_words(run.selection)

    # --- permissions: a run is started and cancelled, never edited --------------------------

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def can_cancel(self, request):
        return request.user.has_perm("simulation.change_simulationrun")

    # --- pages ------------------------------------------------------------------------------

    def get_urls(self):
        own = [
            path("<path:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view),
                 name="simulation_simulationrun_cancel"),
            path("<path:object_id>/csv/", self.admin_site.admin_view(self.csv_view),
                 name="simulation_simulationrun_csv"),
        ]  # fmt: skip
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = SimulationForm(request.POST)
            if form.is_valid():
                run = self._start(request, form)
                if run is not None:
                    messages.success(request, f"“{run.title}” is queued: this page shows its "
                                              "progress, then its results.")  # fmt: skip
                    return HttpResponseRedirect(self._url(run))
        else:
            first, end = last_full_month()
            form = SimulationForm(initial={
                "draft": dump_document(catalog_document()),
                "first_day": first.date(),
                "last_day": (end - timedelta(days=1)).date(),
                "seed": 0,
            })  # fmt: skip
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "form": form, "title": "Try a pricing change"}  # fmt: skip
        return TemplateResponse(request, "admin/simulation/simulationrun/start.html", context)

    def _start(self, request, form):
        data = form.cleaned_data
        starts_at, ends_at = day_range(data["first_day"], data["last_day"])
        try:
            return start_run(title=data["title"], draft_text=data["draft"],
                             contracts_text=data["contracts"], starts_at=starts_at,
                             ends_at=ends_at, plan=data["plan"] or None,
                             account_ids=data["account_ids"], sample=data["sample"],
                             seed=data["seed"], acting_user=request.user)  # fmt: skip
        except InvalidInput as error:
            form.add_error(None, error.message)
            for problems in error.details.values():
                for problem in problems if isinstance(problems, list) else [problems]:
                    form.add_error(None, str(problem))
            return None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST" or not self.has_view_permission(request):
            raise PermissionDenied
        run = self._run(request, object_id)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "run": run, "title": run.title, "can_cancel": self.can_cancel(request),
                   "last_day": run.ends_at - timedelta(days=1),
                   "can_export": request.user.has_perm(EXPORT_PERMISSION),
                   **self._results(run)}  # fmt: skip
        return TemplateResponse(request, "admin/simulation/simulationrun/results.html", context)

    def _results(self, run):
        if run.status != SimulationRun.Status.DONE:
            return {"finished": run.status in SimulationRun.FINISHED}
        real, draft = (Figures.from_dict(run.totals[side]) for side in ("real", "draft"))
        lines = run.lines.select_related("account")
        affected = lines.annotate(size=Abs(F("charged_change"))).order_by(
            "-size", "-refused", "account_id"
        )[:MOST_AFFECTED]
        return {
            "finished": True,
            "totals": report.totals_table(real, draft),
            "chart": _distribution(lines),
            "affected": [_affected_row(line) for line in affected],
        }

    def cancel_view(self, request, object_id):
        if not self.can_cancel(request):
            raise PermissionDenied
        run = self._run(request, object_id)
        if request.method == "POST":
            run = cancel_run(run_id=run.pk, acting_user=request.user)
            messages.info(request, "Cancelled." if run.status == SimulationRun.Status.CANCELED
                          else "Cancelling: the run stops after the chunk it is on.")  # fmt: skip
        return HttpResponseRedirect(self._url(run))

    def csv_view(self, request, object_id):
        # Every account's figures in one file: a bulk export, with its own permission.
        if not (self.has_view_permission(request) and request.user.has_perm(EXPORT_PERMISSION)):
            raise PermissionDenied
        run = self._run(request, object_id)
        lines = run.lines.select_related("account").order_by("account_id")

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def rows():
            yield writer.writerow(report.HEADER)
            for line in lines.iterator(chunk_size=2000):
                yield writer.writerow(
                    report.row(line.account_id, line.account.external_id, *figures_of(line))
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="simulation-{run.pk}.csv"'
        return response

    def _run(self, request, object_id):
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404("No simulation run has that id.")
        return run

    def _url(self, run):
        return reverse("admin:simulation_simulationrun_change", args=[run.pk])


def _selection_words(selection):
    words = []
    if "accounts" in selection:
        words.append(f"{len(selection['accounts']):,} listed")
    elif "plan" in selection:
        words.append(f"subscribers of {selection['plan']}")
    else:
        words.append("everyone")
    if "sample" in selection:
        words.append(f"sample of {selection['sample']:,} (seed {selection.get('seed', 0)})")
    return ", ".join(words)


def _bucket(percent):
    """The bucket of a change in percent (None: nothing was charged in reality)."""
    if percent is None:
        return BUCKETS[7]
    if percent == 0:
        return BUCKETS[3]
    if percent < 0:
        return BUCKETS[0] if percent <= -50 else BUCKETS[1] if percent <= -10 else BUCKETS[2]
    return BUCKETS[4] if percent < 10 else BUCKETS[5] if percent < 50 else BUCKETS[6]


def _distribution(lines):
    """How many accounts fall in each bucket of change."""
    counts = dict.fromkeys(BUCKETS, 0)
    for percent in lines.values_list("change_percent", flat=True):
        counts[_bucket(percent)] += 1
    return Chart(
        id="change-distribution",
        title="Accounts by change in credits charged",
        label_header="Change",
        labels=list(counts),
        series=[Series("Accounts", list(counts.values()), show=lambda n: f"{n:,}")],
    )


def _affected_row(line):
    real, draft = figures_of(line)
    change = report.Change.of(real, draft)
    percent = "—" if change.percent is None else f"{change.percent:+} %"
    return {
        "account": format_html(
            '<a href="{}">{}</a>',
            reverse("admin:accounts_account_change", args=[line.account_id]),
            line.account.external_id,
        ),
        "real": humanize.credits(real.charged),
        "draft": humanize.credits(draft.charged),
        "change": ("+" if change.credits > 0 else "") + humanize.credits(change.credits),
        "percent": percent,
        "refused": f"{change.refused:,}",
        "revenue": humanize.money(change.revenue, change.currency) if change.currency else "—",
    }
