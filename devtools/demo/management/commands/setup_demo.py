import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts.models import Account
from apps.accounts.selectors import live_subscription
from apps.accounts.services import upsert_account
from apps.catalog.contracts import put_contract
from apps.catalog.models import Contract, Plan
from apps.catalog.pricebook import read_document
from apps.catalog.services import import_catalog
from apps.periods.services import put_account_on_plan

DEMO_CATALOG = settings.BASE_DIR / "demo" / "catalog.yaml"
DEMO_ACCOUNTS = [
    ("acme", "Acme Corp", "billing@acme.example", "pro"),
    ("globex", "Globex", "ops@globex.example", "starter"),
    ("initech", "Initech", "it@initech.example", "free"),
]
# Acme's enterprise deal (docs/contracts.md): cheaper API calls without a quota, more credits.
DEMO_CONTRACT = {
    "included_credits": {"credits": "20000"},
    "features": [{"feature": "api_call", "credits_per_unit": "0.5", "limit_per_period": None}],
    "overage": {"policy": "allow", "limit": "5000", "unit_price": "0.004"},
}
PASSWORD_FILE = settings.VAR_DIR / "local-admin-password"


class Command(BaseCommand):
    help = "Local only: load the demo price book and accounts and a superuser (idempotent)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("setup_demo is for local development (DEBUG=True) only.")
        raw = read_document(DEMO_CATALOG.read_text(encoding="utf-8"), filename=DEMO_CATALOG.name)
        result = import_catalog(raw=raw, source="demo/catalog.yaml")
        self.stdout.write(f"Demo catalog: {result.report().splitlines()[-1]}")

        with transaction.atomic():
            for external_id, name, email, plan_code in DEMO_ACCOUNTS:
                account, created = upsert_account(external_id=external_id, name=name, email=email)
                if live_subscription(account=account) is None:
                    put_account_on_plan(
                        account=account, plan=Plan.objects.get(code=plan_code, current=True)
                    )
        acme = Account.objects.get(external_id="acme")
        if not Contract.objects.filter(account=acme).exists():
            put_contract(account=acme, raw=DEMO_CONTRACT, reason="demo: Acme's enterprise deal")
        self.stdout.write(f"Demo accounts: {Account.objects.count()} in the database.")

        username, password = "admin", self._local_password()
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if not user.check_password(password):
            user.set_password(password)
            user.is_staff = user.is_superuser = True
            user.save()
        self.stdout.write(self.style.SUCCESS(f"Admin login: {username} / {password}"))

    def _local_password(self):
        """A random password kept in var/ (git-ignored, owner-only), so it stays stable."""
        path = Path(PASSWORD_FILE)
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        path.touch(mode=0o600)
        path.write_text(password)
        return password
