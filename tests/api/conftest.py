import pytest

from apps.accounts.services import create_api_key


@pytest.fixture
def client_with(api_client):
    """An API client whose key has exactly `scopes` (and is bound to `account`, if given)."""

    def make(*scopes, account=None):
        _, raw = create_api_key(name="test", scopes=list(scopes), account=account)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return api_client

    return make


def error_code(response):
    return response.json()["error"]["code"]
