"""Request ids: every response carries `X-Request-ID` (the caller's, if it sent a sane one),
and errors are logged with it, so a customer's report can be matched to the log line."""

import re
import uuid

SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request.headers.get("X-Request-ID", ""))
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


def request_id_for(incoming):
    return incoming if SANE.match(incoming) else uuid.uuid4().hex
