from django.core.management.base import BaseCommand, CommandError

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create or update a Stripe Product and Price for every plan (recurring) and credit "
        "pack (one-time); archive the prices of inactive ones. Safe to run again."
    )

    def handle(self, *args, **options):
        try:
            report = sync_stripe_catalog()
        except DomainError as error:
            raise CommandError(error.message) from None
        for name in ("created", "repriced", "archived"):
            for label in getattr(report, name):
                self.stdout.write(f"{name}: {label}")
        self.stdout.write(self.style.SUCCESS(f"Stripe catalog: {report.summary()}."))
