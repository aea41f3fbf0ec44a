import hmac

from django.utils import timezone

from .models import ApiKey, Subscription
from .services import hash_api_key, split_api_key


def usable_api_key(*, raw_key):
    """The key a presented secret belongs to, if it is valid, unrevoked and unexpired."""
    prefix = split_api_key(raw_key or "")
    if prefix is None:
        return None
    api_key = ApiKey.objects.select_related("account").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_api_key(raw_key)):
        return None
    if api_key.revoked_at is not None:
        return None
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        return None
    return api_key


def live_subscription(*, account):
    return (
        Subscription.objects.select_related("plan")
        .filter(account=account, status__in=Subscription.LIVE_STATUSES)
        .first()
    )
