import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

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

    def handle(self, *args, file, dry_run, **options):
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
