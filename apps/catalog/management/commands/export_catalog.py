from django.core.management.base import BaseCommand

from apps.catalog.pricebook import dump_document
from apps.catalog.selectors import catalog_document


class Command(BaseCommand):
    help = "Write the whole catalog in the import_catalog file format (docs/catalog.md)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")

    def handle(self, *args, format, output, **options):
        text = dump_document(catalog_document(versions=True), fmt=format)
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            self.stdout.write(text, ending="")
