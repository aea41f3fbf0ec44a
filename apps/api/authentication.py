from rest_framework import authentication, exceptions

from apps.accounts.selectors import usable_api_key
from apps.accounts.services import note_api_key_use


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <api key>`. Sets `request.auth` to the ApiKey; there is no user."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, raw_key = header.partition(" ")
        if keyword.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        api_key = usable_api_key(raw_key=raw_key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        note_api_key_use(api_key=api_key)
        return (None, api_key)

    def authenticate_header(self, request):
        return self.keyword
