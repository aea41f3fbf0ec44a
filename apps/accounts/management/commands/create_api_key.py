import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account
from apps.accounts.services import create_api_key
from apps.core import clock
from apps.core.errors import InvalidInput


class Command(BaseCommand):
    help = "Create an API key and print its secret once. Only a hash of it is stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who or what uses the key.")
        parser.add_argument(
            "--scopes",
            required=True,
            help="Comma-separated: usage:write, usage:read, accounts:write, grants:write, "
            "webhooks:write.",
        )
        parser.add_argument("--account", help="Bind the key to this account (external id).")
        parser.add_argument("--expires-in-days", type=int, help="Expire after this many days.")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of text."
        )

    def handle(self, *args, name, scopes, account, expires_in_days, as_json, **options):
        bound = None
        if account:
            bound = Account.objects.filter(external_id=account).first()
            if bound is None:
                raise CommandError(f"No account has external id {account!r}.")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = clock.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            api_key, raw_key = create_api_key(
                name=name,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                account=bound,
                expires_at=expires_at,
            )
        except InvalidInput as exc:
            problems = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.details.items())
            raise CommandError(f"{exc.message} {problems}") from None
        if as_json:
            self.stdout.write(_json_dumps(api_key, raw_key))
            return
        self.stdout.write(
            f"API key {api_key.name!r} created. Copy the secret now; it is not shown again:"
        )
        self.stdout.write("")
        self.stdout.write(f"    {raw_key}")
        self.stdout.write("")
        self.stdout.write(
            f"prefix {api_key.prefix}, scopes {', '.join(api_key.scopes)}, "
            f"account {account or '(any: service key)'}, "
            f"expires {api_key.expires_at.isoformat() if api_key.expires_at else 'never'}"
        )


def _json_dumps(api_key, raw_key):
    return json.dumps(
        {
            "id": api_key.pk,
            "name": api_key.name,
            "key": raw_key,
            "prefix": api_key.prefix,
            "scopes": api_key.scopes,
            "account": api_key.account.external_id if api_key.account else None,
            "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
        }
    )
