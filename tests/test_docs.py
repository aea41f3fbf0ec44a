"""The docs are the product's own: every relative link in README.md and docs/*.md points at a
file of this repository (and at a heading of it, when the link names one), and neither the
docs nor the code's comments cite documents a user of the repository does not have."""

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from apps.api.schema import reference_markdown

ROOT = Path(settings.BASE_DIR)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
# [text](target) — not images' alt text nor code spans' brackets; targets without a scheme.
LINK = re.compile(r"(?<!\!)\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, re.MULTILINE)}


def relative_links(path):
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text()))
    for target in LINK.findall(text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            yield target


def broken_links(path, root=ROOT):
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_relative_to(root):
            yield f"{target} (outside the repository)"
        elif not linked.exists():
            yield f"{target} (no such file)"
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            yield f"{target} (no such heading)"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_in_the_docs_resolves(path):
    assert list(broken_links(path)) == []


def test_the_link_check_sees_a_missing_file_an_outside_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.md").write_text("# Using it\n\n## A key\n")
    probe = tmp_path / "docs" / "probe.md"
    probe.write_text(
        "# Title\n\n[a](api.md) [b](api.md#a-key) [c](#title) [d](https://example.com)\n"
        "[e](nope.md) [f](../../outside.md) [g](api.md#no-such-heading) `[h](nope.md)`\n"
    )
    assert list(broken_links(probe, root=tmp_path)) == [
        "nope.md (no such file)",
        "../../outside.md (outside the repository)",
        "api.md#no-such-heading (no such heading)",
    ]


# Documents that exist only beside this repository, never in it.
OUTSIDE = re.compile(r"\.\./shared|\bAPI\.md\b|\bDESIGN\.md\b")
SOURCES = (".py", ".md", ".sh", ".html", ".txt", ".toml", ".yaml", ".cfg", ".lua")


def citing_outside():
    paths = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for folder in ("apps", "config", "tests", "bench"):
        paths += [p for p in (ROOT / folder).rglob("*") if p.suffix in SOURCES]
    for path in sorted(paths):
        if path == Path(__file__):
            continue  # this file names what it looks for
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                yield f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_docs_and_code_cite_nothing_outside_the_repository():
    """No `../shared/...`, API.md or DESIGN.md: the repository's own docs are in docs/."""
    assert list(citing_outside()) == []


@pytest.mark.django_db
def test_the_api_reference_is_generated_from_the_current_schema(client):
    """docs/api-reference.md is the contract for people; it says what /api/schema/ says."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    on_disk = (ROOT / "docs" / "api-reference.md").read_text().splitlines()
    generated = reference_markdown(schema).splitlines()
    changes = list(difflib.unified_diff(on_disk, generated, "on disk", "generated", lineterm=""))
    assert changes == [], (
        "docs/api-reference.md is out of date "
        "(.venv/bin/python manage.py api_reference > docs/api-reference.md):\n" + "\n".join(changes)
    )


def test_the_command_named_above_writes_the_reference_even_without_a_migrated_database(tmp_path):
    """`manage.py api_reference` on a fresh checkout (no tables yet) gives the file on disk:
    the catalog's fields are marked whether or not there is a catalog to list."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}"}  # fmt: skip
    done = subprocess.run([sys.executable, "manage.py", "api_reference"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "docs" / "api-reference.md").read_text()
