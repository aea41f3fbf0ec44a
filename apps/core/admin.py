"""Admin helpers shared by the apps."""

from functools import partial

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import slugify
from simple_history.admin import SimpleHistoryAdmin

from .exports import FORMATS, content_type, export_chunks, export_filename

COUNT_CAP = 10_000


class LargeTablePaginator(Paginator):
    """Pages over millions of rows without a full COUNT(*): the count stops at COUNT_CAP
    (the admin then shows "10000" results and page links up to there; filter to narrow)."""

    @cached_property
    def count(self):
        return self.object_list.order_by()[:COUNT_CAP].count()


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only records: viewable by those with the view permission, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LargeTableAdmin(ReadOnlyAdmin):
    """Read-only lists over tables that grow to millions of rows: no full COUNT(*), no
    per-filter counts (facets)."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


class HistoryAdmin(SimpleHistoryAdmin):
    """The one base of every history-tracked admin.

    django-simple-history's "revert" form (`.../history/<id>/`) checks only the *view*
    permission and then saves the POSTed form over the live row, so on its own it lets
    read-only staff rewrite prices or reactivate accounts. Here a revert needs the change
    permission, models whose state moves only through services refuse it outright
    (`history_revert = False`), and a revert restores only the fields the change form edits:
    read-only fields (a status, a revocation) keep today's values.
    """

    history_revert = True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            obj = self.get_object(request, unquote(object_id))
            if not (self.history_revert and self.has_change_permission(request, obj)):
                raise PermissionDenied
            request._history_revert = True
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return not self.history_revert or super().revert_disabled(request, obj)

    def save_model(self, request, obj, form, change):
        if getattr(request, "_history_revert", False):
            current = type(obj)._default_manager.get(pk=obj.pk)
            for field in obj._meta.concrete_fields:
                if field.name not in form.cleaned_data:
                    setattr(obj, field.attname, getattr(current, field.attname))
        super().save_model(request, obj, form, change)


class ExportMixin:
    """*Export CSV* and *Export JSON Lines* links on a changelist, for the rows it lists now:
    the links carry the list's query string (filters, date drill-down, search), and the export
    view builds the same filtered queryset through `get_changelist_instance` and streams all
    its rows (apps/core/exports.py), not one page. Whoever may view the list may export it.
    An admin using it sets `export_columns` (a list of `apps.core.exports.Column`)."""

    export_columns = ()
    change_list_template = "admin/export_change_list.html"
    EXPORT_LABELS = {"csv": "Export CSV", "jsonl": "Export JSON Lines"}

    def has_export_permission(self, request):
        return self.has_view_or_change_permission(request)

    def _export_url_name(self, fmt):
        return f"{self.opts.app_label}_{self.opts.model_name}_export_{fmt}"

    def get_urls(self):
        view = self.admin_site.admin_view
        exports = [
            path(
                f"export.{fmt}",
                view(partial(self.export_view, fmt=fmt)),
                name=self._export_url_name(fmt),
            )
            for fmt in FORMATS
        ]
        return [*exports, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        links = []
        if self.has_export_permission(request):
            query = request.GET.copy()
            query.pop("p", None)  # the export has every page
            suffix = f"?{query.urlencode()}" if query else ""
            links = [
                (label, reverse(f"admin:{self._export_url_name(fmt)}") + suffix)
                for fmt, label in self.EXPORT_LABELS.items()
            ]
        extra_context = {**(extra_context or {}), "export_links": links}
        return super().changelist_view(request, extra_context)

    def export_view(self, request, fmt):
        if not self.has_export_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return redirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist") + "?e=1"
            )
        chunks = export_chunks(changelist.queryset, columns=self.export_columns, fmt=fmt)
        response = StreamingHttpResponse(chunks, content_type=content_type(fmt))
        name = export_filename(
            slugify(self.opts.verbose_name_plural), fmt, day=timezone.now().date()
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
