"""Admin helpers shared by the apps."""

from dataclasses import dataclass
from functools import partial, update_wrapper

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import models
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.text import capfirst, slugify
from simple_history.admin import SimpleHistoryAdmin

from apps.core import clock

from . import humanize
from .decimals import (
    CREDIT_DIGITS,
    CREDIT_PLACES,
    MONEY_DIGITS,
    MONEY_PLACES,
    UNIT_PRICE_DIGITS,
    UNIT_PRICE_PLACES,
)
from .exports import FORMATS, content_type, export_chunks, export_filename
from .models import EXPORT_PERMISSION
from .replicas import replica_reads, streamed_from_replica

COUNT_CAP = 10_000

# How a number is read, by its column's precision (apps/core/fields.py makes every credit, money
# and unit-price column with one of these).
CREDITS, MONEY, UNIT_PRICE, PER_UNIT, QUANTITY = (
    "credits", "money", "unit_price", "per_unit", "quantity"
)  # fmt: skip
KIND_BY_PRECISION = {
    (CREDIT_DIGITS, CREDIT_PLACES): CREDITS,
    (MONEY_DIGITS, MONEY_PLACES): MONEY,
    (UNIT_PRICE_DIGITS, UNIT_PRICE_PLACES): UNIT_PRICE,
}
HUMAN_SUFFIX = "_human"


def _unit_name(obj):
    """The unit a per-unit credit price is for: the feature's (`call`, `page`)."""
    feature = obj if hasattr(obj, "unit_name") else getattr(obj, "feature", None)
    return getattr(feature, "unit_name", "unit")


def show_number(kind, value, obj):
    """One number of `obj` as staff read it (apps/core/humanize.py)."""
    if kind == MONEY:
        return humanize.money(value, getattr(obj, "currency", ""))
    if kind == UNIT_PRICE:
        return humanize.unit_price(value, getattr(obj, "currency", ""))
    if kind == PER_UNIT:
        return humanize.credits_per(value, _unit_name(obj))
    if kind == QUANTITY:
        return humanize.group_digits(value)
    return humanize.credits(value)


def number_kind(field, overrides):
    if field.name in overrides:
        return overrides[field.name]
    if not isinstance(field, models.DecimalField):
        return None
    kind = KIND_BY_PRECISION.get((field.max_digits, field.decimal_places))
    return PER_UNIT if kind == CREDITS and field.name == "credits_per_unit" else kind


class HumanNumbers:
    """Credit and money columns read like a product: `10,000 credits`, `12.00 USD`, in lists,
    inlines and read-only fields; a field staff edit stays a plain decimal input.

    Each credit, money and unit-price field `x` of the model gets a display `x_human` (sorting
    by `x`), shown instead of `x` in `list_display` and wherever `x` is read-only: in
    `readonly_fields`, or on a page the user may only view. `number_kinds` names the fields read
    otherwise (`{"quantity": QUANTITY}`: units of use, not credits).
    """

    number_kinds = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.human_names = {}
        for field in self.model._meta.concrete_fields:
            kind = number_kind(field, self.number_kinds)
            if kind is None:
                continue
            name = field.name + HUMAN_SUFFIX
            if not hasattr(self, name):
                setattr(self, name, self._display(field, kind))
            self.human_names[field.name] = name

    @staticmethod
    def _display(field, kind):
        def display(obj):
            return show_number(kind, getattr(obj, field.attname), obj)

        display.short_description = capfirst(field.verbose_name)
        display.admin_order_field = field.name
        return display

    def _human(self, names, swap):
        """`names` with the swapped fields' displays, each once (a fieldset line may be a
        tuple)."""
        out, seen = [], set()
        for name in names:
            if isinstance(name, list | tuple):
                out.append(type(name)(self._human(name, swap)))
                continue
            name = swap.get(name, name) if isinstance(name, str) else name
            if name not in seen:
                seen.add(name)
                out.append(name)
        return out

    def get_list_display(self, request):
        return self._human(super().get_list_display(request), self.human_names)

    def get_readonly_fields(self, request, obj=None):
        """The read-only number fields stay listed (so the form leaves them out) beside their
        displays, which the fieldsets show. On a view-only page every number is read-only."""
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            shown = self.human_names
        else:
            shown = {f: h for f, h in self.human_names.items() if f in fields}
        return [*fields, *(h for h in shown.values() if h not in fields)]

    def get_fieldsets(self, request, obj=None):
        readonly = set(self.get_readonly_fields(request, obj))
        swap = {f: h for f, h in self.human_names.items() if h in readonly}
        return [
            (title, {**options, "fields": self._human(options["fields"], swap)})
            for title, options in super().get_fieldsets(request, obj)
        ]


class LargeTablePaginator(Paginator):
    """Pages over millions of rows without a full COUNT(*): the count stops at COUNT_CAP
    (the admin then shows "10000" results and page links up to there; filter to narrow)."""

    @cached_property
    def count(self):
        return self.object_list.order_by()[:COUNT_CAP].count()


class ListsFromReplica:
    """A changelist's page (GET) may be read from a replica (apps/core/replicas.py): a list
    decides no money. Its actions (POST) stay on the primary."""

    def changelist_view(self, request, extra_context=None):
        if request.method != "GET":
            return super().changelist_view(request, extra_context)
        with replica_reads():
            return super().changelist_view(request, extra_context)


class ReadOnlyAdmin(ListsFromReplica, admin.ModelAdmin):
    """For append-only records: viewable by those with the view permission, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LargeTableAdmin(HumanNumbers, ReadOnlyAdmin):
    """Read-only lists over tables that grow to millions of rows: no full COUNT(*), no
    per-filter counts (facets)."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


class HistoryAdmin(ListsFromReplica, HumanNumbers, SimpleHistoryAdmin):
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


EXPORT_LABELS = {"csv": "Export CSV", "jsonl": "Export JSON Lines"}


def may_export(model_admin, request):
    """Who may export what a screen shows: who may view it and has the export permission
    (docs/exports.md, "Who may export")."""
    return model_admin.has_view_or_change_permission(request) and request.user.has_perm(
        EXPORT_PERMISSION
    )


def export_response(chunks, *, name, fmt):
    """An export streamed as a download named after the list and the day (UTC):
    `ledger-entries-2026-12-02.csv`. Its rows may come from a replica: they are written out
    after the view has returned, as the server sends them."""
    response = StreamingHttpResponse(streamed_from_replica(chunks), content_type=content_type(fmt))
    filename = export_filename(name, fmt, day=clock.now().date())
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ExportMixin:
    """*Export CSV* and *Export JSON Lines* links on a changelist, for the rows it lists now:
    the links carry the list's query string (filters, date drill-down, search), and the export
    view builds the same filtered queryset through `get_changelist_instance` and streams all
    its rows (apps/core/exports.py), not one page. Who may export: `may_export`.
    An admin using it sets `export_columns` (a list of `apps.core.exports.Column`)."""

    export_columns = ()
    change_list_template = "admin/export_change_list.html"

    def has_export_permission(self, request):
        return may_export(self, request)

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
                for fmt, label in EXPORT_LABELS.items()
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
        return export_response(chunks, name=slugify(self.opts.verbose_name_plural), fmt=fmt)


@dataclass(frozen=True)
class PageView:
    """An extra view on an object's admin page, with its button: `view(model_admin, request,
    obj_pk)` at `<pk>/<route>/`, named `admin:<app>_<model>_<name>`, offered to users with
    `permission` (the view checks it too)."""

    name: str
    route: str
    label: str
    permission: str
    view: object


_PAGE_PARTS = {}


def add_to_page(model, *, inline=None, view=None):
    """A higher app's admin module adds a part to a lower app's object page: an inline, or a
    `PageView`. The lower app's admin (an `ExtendablePage`) shows it without importing the
    higher app (the layers of .importlinter)."""
    parts = _PAGE_PARTS.setdefault(model, {"inlines": [], "views": []})
    if inline is not None:
        parts["inlines"].append(inline)
    if view is not None:
        parts["views"].append(view)


class ExtendablePage:
    """An admin whose object page shows what higher apps add to it (`add_to_page`); its
    change form template lists the added views' buttons (`page_views`)."""

    def _parts(self, kind):
        return _PAGE_PARTS.get(self.model, {}).get(kind, [])

    def added_views(self):
        """The `PageView`s higher apps added to this admin's object page."""
        return self._parts("views")

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), *self._parts("inlines")]

    def get_urls(self):
        opts = self.model._meta
        added = []
        for page_view in self.added_views():
            view = update_wrapper(partial(page_view.view, self), page_view.view)
            added.append(
                path(
                    f"<path:object_id>/{page_view.route}/",
                    self.admin_site.admin_view(view),
                    name=f"{opts.app_label}_{opts.model_name}_{page_view.name}",
                )
            )
        return [*added, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        opts = self.model._meta
        buttons = [
            (
                page_view.label,
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_{page_view.name}",
                    args=[object_id],
                ),
            )
            for page_view in self.added_views()
            if request.user.has_perm(page_view.permission)
        ]
        extra_context = {**(extra_context or {}), "page_views": buttons}
        return super().change_view(request, object_id, form_url, extra_context)
