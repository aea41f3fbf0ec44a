import json

from django.core.management.base import BaseCommand
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from apps.api.schema import reference_markdown


class Command(BaseCommand):
    help = (
        "Print docs/api-reference.md, generated from the OpenAPI schema "
        "(`manage.py api_reference > docs/api-reference.md`); --json prints the schema."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the OpenAPI schema.")

    def handle(self, *args, **options):
        # As /api/schema/ serves it (JSON), so the text equals what the test renders from there.
        generated = SchemaGenerator().get_schema(request=None, public=True)
        schema = json.loads(OpenApiJsonRenderer().render(generated))
        if options["json"]:
            self.stdout.write(json.dumps(schema, indent=2, default=str))
        else:
            self.stdout.write(reference_markdown(schema), ending="")
