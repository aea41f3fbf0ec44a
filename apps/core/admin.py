"""Admin helpers shared by the apps."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from simple_history.admin import SimpleHistoryAdmin

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
