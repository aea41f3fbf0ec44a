import contextlib
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.gateway import connect_stripe_webhook
from devtools.offline_stripe.server import serve
from devtools.offline_stripe.stand_in import OfflineStripe


class Command(BaseCommand):
    help = (
        "Serve the offline Stripe (no keys configured: the demo's Stripe) on "
        "OFFLINE_STRIPE_PORT, register this site's webhook with it and sync the catalog. "
        "With Stripe keys configured it does nothing and waits (so `make run` works alike)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-setup",
            action="store_true",
            help="Only serve: no webhook registration, no catalog sync.",
        )

    def handle(self, *args, no_setup=False, **options):
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        if not settings.OFFLINE_STRIPE:
            self.stdout.write("Stripe keys are configured: the offline Stripe stays off.")
            stopped.wait()
            return
        stand_in = OfflineStripe(state_file=settings.OFFLINE_STRIPE_STATE)
        server = serve(stand_in, port=settings.OFFLINE_STRIPE_PORT)
        self.stdout.write(f"Offline Stripe on {server.url} (state: {stand_in.state_file})")
        if not no_setup:
            endpoint, _ = connect_stripe_webhook(base_url=settings.SITE_URL)
            self.stdout.write(f"Webhooks go to {endpoint.url}")
            self.stdout.write(f"Catalog: {sync_stripe_catalog().summary()}")
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
        server.shutdown()
