"""Admin helpers shared by the apps."""

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

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
