from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account
from apps.core.snapshots import one_snapshot
from apps.wallets.models import CreditGrant, LedgerEntry, Wallet
from apps.wallets.selectors import ledger_violations


class Command(BaseCommand):
    help = "Check the ledger invariants of docs/ledger.md; exit non-zero on any violation."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Only this account (external id).")

    def handle(self, *args, account, **options):
        scope = None
        if account:
            scope = Account.objects.filter(external_id=account).first()
            if scope is None:
                raise CommandError(f"No account has external id {account!r}.")
        wallets, grants, entries = Wallet.objects, CreditGrant.objects, LedgerEntry.objects
        if scope is not None:
            wallets, grants, entries = (
                wallets.filter(account=scope),
                grants.filter(account=scope),
                entries.filter(account=scope),
            )
        with one_snapshot():  # the checks and the counts of one moment
            problems = ledger_violations(account=scope)
            summary = (
                f"{wallets.count()} wallets, {grants.count()} grants, {entries.count()} ledger "
                f"entries checked: {len(problems)} violation(s)."
            )
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
