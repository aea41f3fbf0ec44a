from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from apps.wallets.selectors import database_role_problems


class Command(BaseCommand):
    help = (
        "Check that the database role the app runs as cannot rewrite the ledger: it does not "
        "own the tables, is no superuser, has UPDATE, DELETE and TRUNCATE revoked on the ledger "
        "table, and the append-only triggers are in place (docs/ledger.md). PostgreSQL only. "
        "Exits non-zero on any problem."
    )

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("check_db_role checks PostgreSQL roles; this database has none.")
        role, problems = database_role_problems()
        if problems:
            raise CommandError(
                f"The database role {role} can change the ledger:\n"
                + "\n".join(f"  - {problem}" for problem in problems)
            )
        self.stdout.write(self.style.SUCCESS(f"{role}: ok, the ledger is append-only for it"))
