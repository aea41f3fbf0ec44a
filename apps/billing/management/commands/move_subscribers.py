from django.core.management.base import BaseCommand, CommandError

from apps.billing.plan_moves import WHEN, move_subscribers, preview_move, version_of
from apps.core.errors import InvalidInput


class Command(BaseCommand):
    help = (
        "Move the subscribers of one version of a plan to another, now or at their period "
        "end (docs/catalog.md, 'Plan versions'). Prints what changes for them first."
    )

    def add_arguments(self, parser):
        parser.add_argument("plan", help="The plan's code.")
        parser.add_argument("--from-version", type=int, required=True)
        parser.add_argument(
            "--to-version", type=int, help="Default: the current version (new subscribers')."
        )
        parser.add_argument("--when", choices=WHEN, required=True)
        parser.add_argument("--limit", type=int, help="Move at most this many.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the preview; move nobody."
        )

    def handle(self, *args, plan, from_version, to_version, when, limit, dry_run, **options):
        try:
            from_plan = version_of(code=plan, version=from_version)
            to_plan = version_of(code=plan, version=to_version)
            self.stdout.write(preview_move(from_plan=from_plan, to_plan=to_plan, when=when)
                              .describe())  # fmt: skip
            if dry_run:
                self.stdout.write("Dry run: nobody was moved.")
                return
            result = move_subscribers(from_plan=from_plan, to_plan=to_plan, when=when,
                                      limit=limit)  # fmt: skip
        except InvalidInput as error:
            raise CommandError(error.message) from None
        self.stdout.write(result.describe())
        if result.failed:
            raise CommandError(f"{len(result.failed)} subscriber(s) not moved; run it again.")
