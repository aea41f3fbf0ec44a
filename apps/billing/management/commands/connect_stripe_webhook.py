from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.billing.gateway import connect_stripe_webhook
from apps.core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Register this site's dj-stripe webhook URL with Stripe (test or live mode, by the "
        "keys configured) and store its signing secret. Keeps an endpoint already registered."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=settings.SITE_URL,
            help="Public https address Stripe will post to (default: SITE_URL).",
        )

    def handle(self, *args, base_url, **options):
        try:
            endpoint, created = connect_stripe_webhook(base_url=base_url)
        except DomainError as error:
            raise CommandError(error.message) from None
        verb = "Registered" if created else "Already registered:"
        self.stdout.write(self.style.SUCCESS(f"{verb} {endpoint.url}"))
