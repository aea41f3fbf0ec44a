"""The staff permission matrix, walked over HTTP and held against the README.

For every registered ModelAdmin and every staff group (and a staff user in no group) this
GETs and POSTs the changelist, add, change, delete, history and history-revert URLs, every
action and every extra admin view, and records what the user could do. The result must equal
the table in README.md ("The admin"): a new admin, action or permission changes the walk, so
the README cannot drift from what the code allows. On a mismatch the failure prints the table
as it should read.
"""

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from apps.core.admin import HistoryAdmin
from tests.factories import UserFactory, admin_samples

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- permission-matrix:start -->", "<!-- permission-matrix:end -->"
GROUPS = ["Pricing", "Finance", "Support", "no group"]
NOTHING = "—"
DENIED = 403
STANDARD_VIEWS = {"changelist", "add", "history", "delete", "change", "simple_history"}


@pytest.fixture
def samples():
    admin_samples()


def registered():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def walk(client, model, model_admin):
    """What the logged-in user can do on one admin, in the README's words."""
    opts = model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}"
    obj = model._default_manager.order_by("pk").first()
    pk = quote(obj.pk) if obj is not None else "0"
    can = []

    def allowed(response, what):
        assert response.status_code in (200, 302, DENIED), (opts.label, what, response)
        return response.status_code != DENIED

    def need_object(what):
        assert obj is not None, f"{opts.label}: {what} is allowed; give it a sample object"

    view = allowed(client.get(reverse(f"{name}_changelist")), "changelist")
    if view:
        can.append("view")
    if allowed(client.get(reverse(f"{name}_add")), "add"):
        assert allowed(client.post(reverse(f"{name}_add"), {}), "add (POST)")
        can.append("add")
    if allowed(client.get(reverse(f"{name}_change", args=[pk])), "change page"):
        need_object("the change page")
    change_url = reverse(f"{name}_change", args=[pk])
    if allowed(client.post(change_url, {}), "change (POST)"):
        need_object("change")
        can.append("change")
    if isinstance(model_admin, SimpleHistoryAdmin) and obj is not None:
        assert isinstance(model_admin, HistoryAdmin), f"{opts.label}: use apps.core.admin"
        record = obj.history.order_by("history_id").first()
        history_form = reverse(f"{name}_simple_history", args=[pk, record.history_id])
        if allowed(client.get(reverse(f"{name}_history", args=[pk])), "history"):
            assert view, f"{opts.label}: history shown to a user who cannot view"
        if allowed(client.post(history_form, {}), "history revert (POST)"):
            can.append("revert")
    offered = client.get(reverse(f"{name}_changelist")).content.decode() if view else ""
    for action in model_admin.actions or []:
        action_name = action if isinstance(action, str) else action.__name__
        response = client.post(
            reverse(f"{name}_changelist"),
            {"action": action_name, "_selected_action": [pk], "index": 0},
        )
        said = [str(m) for m in get_messages(response.wsgi_request)]
        if f'<option value="{action_name}"' in offered:
            assert allowed(response, action_name) and "No action selected." not in said
            need_object(action_name)
            can.append(action_name)
        else:  # not offered, and a forged POST runs nothing
            assert not allowed(response, action_name) or said in ([], ["No action selected."])
    values = {"action_name": (model_admin.actions or ["-"])[0], "model_name": opts.model_name}
    for pattern in model_admin.get_urls():
        view_name = (pattern.name or "").removeprefix(f"{opts.app_label}_{opts.model_name}_")
        if not pattern.name or view_name in STANDARD_VIEWS:
            continue
        # Extra views take the object's pk, or (dj-stripe's) an action and a model name.
        route = re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m[1], pk)), str(pattern.pattern)
        )
        url = reverse(f"{name}_changelist") + route
        if allowed(client.get(url), view_name):
            assert allowed(client.post(url, {}), f"{view_name} (POST)")
            can.append(view_name)
    return can


def delete_allowed(client, model):
    opts = model._meta
    obj = model._default_manager.order_by("pk").first()
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_delete",
        args=[quote(obj.pk) if obj else "0"],
    )
    if client.get(url).status_code == DENIED:
        return False
    assert obj is not None, f"{opts.label}: delete is allowed; give it a sample object"
    return client.post(url, {"post": "yes"}).status_code != DENIED


def readme_table():
    text = README.read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `"):
            continue
        rows[cells[0].strip("`")] = dict(zip(GROUPS, cells[1:], strict=True))
    superusers_only = re.search(r"Superusers only: (.*?)\.\s*$", block, re.S)
    for label in re.findall(r"`([\w.]+)`", superusers_only.group(1)):
        rows[label] = dict.fromkeys(GROUPS, NOTHING)
    return rows


def render_table(table):
    lines = [
        "| admin | " + " | ".join(GROUPS) + " |",
        "|---|" + "---|" * len(GROUPS),
    ]
    only_superusers = []
    for label, cells in table.items():
        if all(cell == NOTHING for cell in cells.values()):
            only_superusers.append(f"`{label}`")
        else:
            lines.append(f"| `{label}` | " + " | ".join(cells[g] for g in GROUPS) + " |")
    lines += ["", "Superusers only: " + ", ".join(only_superusers) + "."]
    return "\n".join(lines)


def test_the_readme_table_lists_every_registered_admin():
    assert set(readme_table()) == {model._meta.label for model, _ in registered()}


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_can_do_exactly_what_the_readme_says(client, samples, group):
    client.force_login(UserFactory(groups=[] if group == "no group" else [group]))
    found = {
        model._meta.label: walk(client, model, model_admin) for model, model_admin in registered()
    }
    # Deleting last: a delete may cascade to the samples of other admins.
    for model, _ in registered():
        if delete_allowed(client, model):
            found[model._meta.label].append("delete")
    found = {label: ", ".join(can) or NOTHING for label, can in found.items()}

    readme = readme_table()
    expected = {label: readme.get(label, {}).get(group) for label in found}
    if found != expected:
        table = {label: {**readme.get(label, dict.fromkeys(GROUPS, NOTHING))} for label in found}
        for label, cell in found.items():
            table[label][group] = cell
        pytest.fail(
            f"{group} can do other things than README.md says. The table should read:\n\n"
            + render_table(table)
        )
