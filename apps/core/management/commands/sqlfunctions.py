from django.core.management.base import BaseCommand, CommandError

from apps.core.sqlfunctions import Installs, SQLFunctionError, write_migrations


class Command(BaseCommand):
    help = (
        "SQL functions rendered from apps/*/sql: --check fails when a rendering is not what "
        "the migrations install (or a signature changed under its name); --make writes the "
        "migration that installs it."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--check", action="store_true")
        action.add_argument("--make", action="store_true")
        parser.add_argument("--name", default="sql_functions", help="the migration's name")

    def handle(self, *args, check, make, name, **options):
        installs = Installs()
        if check:
            problems = installs.problems()
            if problems:
                raise CommandError("\n".join(problems))
            self.stdout.write("SQL functions: every rendering is installed by a migration.")
            return
        try:
            written = write_migrations(installs, name=name)
        except SQLFunctionError as error:
            raise CommandError(str(error)) from None
        for path in written:
            self.stdout.write(f"Wrote {path}")
        if not written:
            self.stdout.write("SQL functions: nothing to migrate.")
