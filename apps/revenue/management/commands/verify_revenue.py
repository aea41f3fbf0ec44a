from django.core.management.base import BaseCommand, CommandError

from apps.core.snapshots import one_snapshot
from apps.revenue.posting import post_revenue
from apps.revenue.verify import verify_revenue


class Command(BaseCommand):
    help = (
        "Post the ledger into revenue, then check the revenue lines against a full "
        "recomputation from the ledger, every grant against its basis and the revenue "
        "identity for every month and currency. Exits non-zero on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-post", action="store_true",
                            help="Check what is posted without posting first.")  # fmt: skip

    def handle(self, *args, no_post=False, **options):
        if not no_post:
            post_revenue()
        with one_snapshot():  # every figure compared from one moment, whatever posts meanwhile
            problems = verify_revenue()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} difference(s) between revenue and the ledger.")
        self.stdout.write("Revenue agrees with the ledger: every grant, every month.")
