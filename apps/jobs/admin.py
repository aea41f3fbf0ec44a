"""The job runs, failures and lag first: statuses in the admin's message colours, a filter of
the runs that need attention, and above the list a notice per job that failed or lags
(selectors.py decides which)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.core.admin import LargeTableAdmin
from apps.core.humanize import group_digits
from apps.core.replicas import replica_reads

from .models import JobRun
from .selectors import idle_summary, job_alerts, marked_stuck, needing_attention


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", "Needs attention: failed or stuck")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return needing_attention(runs=queryset)
        return queryset


@admin.register(JobRun)
class JobRunAdmin(LargeTableAdmin):
    list_display = ["job", "status_shown", "summary", "started_at", "took", "trigger", "as_of"]
    list_filter = [NeedsAttentionFilter, "job", "status", "trigger"]
    date_hierarchy = "started_at"
    fields = ["job", "status_shown", "trigger", "task_id", "as_of", "started_at",
              "last_started_at", "finished_at", "idle_runs", "count_table", "error"]  # fmt: skip
    readonly_fields = fields

    class Media:
        css = {"all": ["jobs/job_runs.css"]}

    def get_queryset(self, request):
        return marked_stuck(runs=super().get_queryset(request))

    def changelist_view(self, request, extra_context=None):
        with replica_reads():  # as the list itself (ListsFromReplica): they decide nothing
            alerts = job_alerts()
        extra_context = {**(extra_context or {}), "job_alerts": alerts}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Status", ordering="status")
    def status_shown(self, run):
        shown = ("stuck", "running, stuck") if getattr(run, "stuck", False) else (run.status,) * 2
        return format_html('<span class="jobrun-status jobrun-{}">{}</span>', *shown)

    @admin.display(description="Took")
    def took(self, run):
        if run.idle_runs > 1:
            return "—"  # its span is in its counts
        return "running" if run.duration is None else f"{run.duration.total_seconds():.1f} s"

    @admin.display(description="Counts")
    def summary(self, run):
        if run.is_idle:
            return idle_summary(run=run)
        shown = [(k, v) for k, v in run.counts.items() if k not in ("chunks", "errors")]
        return ", ".join(f"{k.replace('_', ' ')} {group_digits(v)}" for k, v in shown)

    @admin.display(description="Counts")
    def count_table(self, run):
        if run.is_idle:
            return idle_summary(run=run)
        rows = [(k.replace("_", " "), v) for k, v in run.counts.items() if k != "errors"]
        rows += [("error", e) for e in run.counts.get("errors", [])]
        return format_html_join("\n", "<div><b>{}</b>: {}</div>", rows) or "—"
