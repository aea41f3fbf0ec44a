from django.contrib import admin
from django.utils.html import format_html_join

from apps.core.admin import LargeTableAdmin

from .models import JobRun


@admin.register(JobRun)
class JobRunAdmin(LargeTableAdmin):
    list_display = ["job", "status", "trigger", "as_of", "started_at", "took", "summary"]
    list_filter = ["job", "status", "trigger"]
    date_hierarchy = "started_at"
    fields = ["job", "status", "trigger", "task_id", "as_of", "started_at", "finished_at",
              "count_table", "error"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Took")
    def took(self, run):
        return "running" if run.duration is None else f"{run.duration.total_seconds():.1f} s"

    @admin.display(description="Counts")
    def summary(self, run):
        shown = ("renewed", "rolled_over", "expired", "reservations_released", "alerts",
                 "deliveries", "failures")  # fmt: skip
        return ", ".join(f"{k.replace('_', ' ')} {run.counts[k]}" for k in shown if k in run.counts)

    @admin.display(description="Counts")
    def count_table(self, run):
        rows = [(k.replace("_", " "), v) for k, v in run.counts.items() if k != "errors"]
        rows += [("error", e) for e in run.counts.get("errors", [])]
        return format_html_join("\n", "<div><b>{}</b>: {}</div>", rows) or "—"
