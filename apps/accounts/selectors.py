import hmac

from django.db import connection

from apps.core import clock

from .models import Account, ApiKey, Subscription
from .services import hash_api_key, split_api_key

# Every API request reads its key, and most an account: one fixed raw statement each (the
# ORM's per-call query compilation costs half a millisecond each on the hot path; raw() still
# applies the backend's converters).
KEY_SQL = "SELECT * FROM accounts_apikey WHERE prefix = %s"
ACCOUNT_SQL = "SELECT * FROM accounts_account WHERE external_id = %s"


def _in_model_order(model, names):  # the order Model.from_db expects
    return [f.attname for f in model._meta.concrete_fields if f.attname in names]


KEY_FIELDS = _in_model_order(ApiKey, {"id", "prefix", "secret_hash", "scopes", "account_id",
                                      "revoked_at", "expires_at", "last_used_at",
                                      "rate_limit_per_minute"})  # fmt: skip
ACCOUNT_FIELDS = _in_model_order(Account, {"id", "external_id", "status"})
# The account joins only if the key may see it: any, or the one it is bound to.
# (Built from field names, not input.)
KEY_AND_ACCOUNT_SQL = f"""
SELECT {", ".join(f"k.{f}" for f in KEY_FIELDS)}, {", ".join(f"a.{f}" for f in ACCOUNT_FIELDS)}
FROM accounts_apikey k
LEFT JOIN accounts_account a
    ON a.external_id = %s AND (k.account_id IS NULL OR a.id = k.account_id)
WHERE k.prefix = %s
"""  # noqa: S608


def account_by_external_id(*, external_id):
    return next(iter(Account.objects.raw(ACCOUNT_SQL, [external_id])), None)


def usable_api_key(*, raw_key):
    """The key a presented secret belongs to, if it is valid, unrevoked and unexpired."""
    prefix = split_api_key(raw_key or "")
    if prefix is None:
        return None
    api_key = next(iter(ApiKey.objects.raw(KEY_SQL, [prefix])), None)
    return api_key if _usable(api_key, raw_key) else None


def usable_api_key_and_account(*, raw_key, external_id):
    """`(usable_api_key, the account it may see by external_id)` in one statement, either may
    be None; for the fast lane, where each round trip and each model load shows. The account
    has only id, external_id and status loaded (other fields load on first use)."""
    prefix = split_api_key(raw_key or "")
    if prefix is None:
        return None, None
    with connection.cursor() as cursor:
        cursor.execute(KEY_AND_ACCOUNT_SQL, [external_id, prefix])
        row = cursor.fetchone()
    if row is None:
        return None, None
    api_key = _load(ApiKey, KEY_FIELDS, row[: len(KEY_FIELDS)])
    if not _usable(api_key, raw_key):
        return None, None
    account_row = row[len(KEY_FIELDS) :]
    if account_row[0] is None:
        return api_key, None
    account = _load(Account, ACCOUNT_FIELDS, account_row)
    if api_key.account_id is not None:
        api_key.account = account
    return api_key, account


def _load(model, field_names, values):
    """A model instance from a cursor's row, with the converters the ORM would apply."""
    converted = []
    for name, value in zip(field_names, values, strict=True):
        column = model._meta.get_field(name).get_col(model._meta.db_table)
        for converter in [*connection.ops.get_db_converters(column),
                          *column.get_db_converters(connection)]:  # fmt: skip
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, field_names, converted)


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
