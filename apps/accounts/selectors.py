import hmac

from apps.core import clock

from .models import Account, ApiKey, Subscription
from .services import hash_api_key, split_api_key

# Every API request reads its key, and most an account: one fixed raw statement each (the
# ORM's per-call query compilation costs half a millisecond each on the hot path; raw() still
# applies the backend's converters).
KEY_SQL = "SELECT * FROM accounts_apikey WHERE prefix = %s"
ACCOUNT_SQL = "SELECT * FROM accounts_account WHERE external_id = %s"


def account_by_external_id(*, external_id):
    return next(iter(Account.objects.raw(ACCOUNT_SQL, [external_id])), None)


def usable_api_key(*, raw_key):
    """The key a presented secret belongs to, if it is valid, unrevoked and unexpired."""
    prefix = split_api_key(raw_key or "")
    if prefix is None:
        return None
    api_key = next(iter(ApiKey.objects.raw(KEY_SQL, [prefix])), None)
    return api_key if _usable(api_key, raw_key) else None


def _usable(api_key, raw_key):
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_api_key(raw_key)):
        return False
    if api_key.revoked_at is not None:
        return False
    return api_key.expires_at is None or api_key.expires_at > clock.now()


def live_subscription(*, account):
    return (
        Subscription.objects.select_related("plan")
        .filter(account=account, status__in=Subscription.LIVE_STATUSES)
        .first()
    )
