"""`import_catalog` lives in billing, not catalog, because `--move-subscribers` moves
Stripe-backed subscribers at Stripe (apps/billing/plan_moves.py)."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.billing.plan_moves import WHEN, move_subscribers, subscribers_of, version_of
from apps.catalog.pricebook import CatalogFileError, read_document
from apps.catalog.services import import_catalog
from apps.core.errors import InvalidInput


class Command(BaseCommand):
    help = "Create or update the catalog from a YAML or JSON file (docs/catalog.md), by code."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Catalog file (.yaml, .yml or .json); - for stdin.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would change; write nothing."
        )
        parser.add_argument(
            "--move-subscribers",
            choices=WHEN,
            help="Move the subscribers of each plan that gets a new version (of every earlier "
            "version) onto it, now or at their period end. Default: they keep their version.",
        )

    def handle(self, *args, file, dry_run, move_subscribers, **options):
        if file == "-":
            text, name = sys.stdin.read(), "stdin"
        else:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"{file}: no such file")
            text, name = path.read_text(encoding="utf-8"), path.name
        try:
            raw = read_document(text, filename=name)
            result = import_catalog(raw=raw, dry_run=dry_run, source=name)
        except CatalogFileError as exc:
            raise CommandError(f"{name}: {exc}; nothing was written.") from None
        except InvalidInput as exc:
            problems = "\n".join(f"  {line}" for line in exc.details.get("catalog", []))
            raise CommandError(f"{name}: {exc.message}\n{problems}") from None
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
        self.stdout.write(result.report())
        if move_subscribers:
            self._move(result, move_subscribers, dry_run)

    def _move(self, result, when, dry_run):
        failed = 0
        for change in result.changes:
            if not change.publishes:
                continue
            # Every earlier version's subscribers, not only the one just superseded.
            earlier = [
                version_of(code=change.code, version=version)
                for version in range(1, change.publishes)
            ]
            if dry_run:
                count = sum(subscribers_of(before).count() for before in earlier)
                self.stdout.write(f"Would move {count} subscriber(s) of {change.code} to "
                                  f"version {change.publishes}, {when}.")  # fmt: skip
                continue
            for before in earlier:
                moved = move_subscribers(
                    from_plan=before, to_plan=version_of(code=change.code), when=when
                )
                self.stdout.write(f"{change.code} v{before.version}: {moved.describe()}")
                failed += len(moved.failed)
        if failed:
            raise CommandError(f"{failed} subscriber(s) not moved; run move_subscribers again.")
