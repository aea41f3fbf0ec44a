import hashlib
import secrets
import string
from datetime import timedelta

from apps.core import clock
from apps.core.errors import InvalidInput

from .models import Account, ApiKey

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_CHARACTERS = frozenset(KEY_ALPHABET)
KEY_PUBLIC_ID_LENGTH = 8
KEY_SECRET_LENGTH = 40  # 40 × log2(62) ≈ 238 random bits
KEY_BRAND = "cdk"


def hash_api_key(raw_key):
    return hashlib.sha256(raw_key.encode()).hexdigest()


def split_api_key(raw_key):
    """`cdk_<public id>_<secret>` -> (`cdk_<public id>`, whole key); None if malformed."""
    brand, sep, rest = raw_key.partition("_")
    public_id, sep2, secret = rest.partition("_")
    if (
        brand != KEY_BRAND
        or not sep
        or not sep2
        or len(public_id) != KEY_PUBLIC_ID_LENGTH
        or len(secret) != KEY_SECRET_LENGTH
        or not set(public_id + secret) <= KEY_CHARACTERS
    ):
        return None
    return f"{brand}_{public_id}"


def api_key_input_errors(*, name, scopes, account, expires_at):
    """Field -> problems for a would-be key; shared by the service, the admin and the command."""
    errors = {}
    unknown = [s for s in scopes if s not in ApiKey.Scope.values]
    if unknown:
        errors["scopes"] = [
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ApiKey.Scope.values)}."
        ]
    elif not scopes:
        errors["scopes"] = ["Give at least one scope."]
    if account is not None and ApiKey.Scope.GRANTS_WRITE in scopes:
        errors.setdefault("scopes", []).append("grants:write is for service keys only.")
    if not name or not name.strip():
        errors["name"] = ["Give the key a name that says who uses it."]
    if expires_at is not None and expires_at <= clock.now():
        errors["expires_at"] = ["Expiry must be in the future."]
    return errors


def create_api_key(*, name, scopes, account=None, expires_at=None, created_by=None,
                   rate_limit_per_minute=None):  # fmt: skip
    """Make a key and return `(api_key, raw_key)`; the raw key exists only in this return value."""
    scopes = sorted(set(scopes))
    errors = api_key_input_errors(name=name, scopes=scopes, account=account, expires_at=expires_at)
    if errors:
        raise InvalidInput("The API key could not be created.", details=errors)

    public_id = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_PUBLIC_ID_LENGTH))
    secret = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_SECRET_LENGTH))
    raw_key = f"{KEY_BRAND}_{public_id}_{secret}"
    api_key = ApiKey.objects.create(
        name=name.strip(),
        prefix=f"{KEY_BRAND}_{public_id}",
        secret_hash=hash_api_key(raw_key),
        scopes=scopes,
        account=account,
        expires_at=expires_at,
        created_by=created_by,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    return api_key, raw_key


LAST_USED_PRECISION = timedelta(minutes=1)


def note_api_key_use(*, api_key, now=None):
    """Record that a key was used, at most once a minute: a write on every request would
    cost more than knowing the exact second is worth."""
    now = now or clock.now()
    last = api_key.last_used_at
    if last is None or now - last >= LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def revoke_api_key(*, api_key, acting_user=None):
    if api_key.revoked_at is None:
        api_key.revoked_at = clock.now()
        api_key._history_user = acting_user
        api_key.save(update_fields=["revoked_at"])
    return api_key


def upsert_account(*, external_id, acting_user=None, **fields):
    """Create or update an account by the SaaS's id. Returns `(account, created)`."""
    account, created = Account.objects.get_or_create(external_id=external_id, defaults=fields)
    if not created:
        changed = [name for name, value in fields.items() if getattr(account, name) != value]
        if changed:
            for name in changed:
                setattr(account, name, fields[name])
            account._history_user = acting_user
            account.save(update_fields=[*changed, "updated_at"])
    return account, created


def set_account_status(*, account, status, acting_user=None):
    """Suspend or reactivate; returns whether anything changed."""
    if account.status == status:
        return False
    account.status = status
    account.suspended_for_nonpayment = False  # staff decided; a payment no longer lifts it
    account._history_user = acting_user
    account.save(update_fields=["status", "suspended_for_nonpayment", "updated_at"])
    return True
