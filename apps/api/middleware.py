from django.conf import settings
from django.http import JsonResponse

from .errors import error_body


class BodySizeLimitMiddleware:
    """Refuse API request bodies over `API_MAX_BODY_BYTES` before anything reads them (a
    batch of 1,000 events fits well within 1 MiB)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/v1/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.API_MAX_BODY_BYTES:
                return JsonResponse(
                    error_body(
                        "batch_too_large",
                        f"The request body is {length} bytes; at most "
                        f"{settings.API_MAX_BODY_BYTES} are accepted.",
                    ),
                    status=413,
                )
        return self.get_response(request)
