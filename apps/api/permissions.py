from rest_framework.permissions import BasePermission


class HasApiKey(BasePermission):
    """Any valid key; views that need more list `required_scopes`."""

    message = "This API key lacks the scope this operation needs."

    def has_permission(self, request, view):
        api_key = request.auth
        if api_key is None:
            return False
        required = getattr(view, "required_scopes", ())
        if isinstance(required, dict):
            required = required.get(request.method, ())
        return all(scope in api_key.scopes for scope in required)
