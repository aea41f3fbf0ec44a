"""Webhook events checked against the OpenAPI document's `webhooks` (apps/api/webhook_events.py)."""

import functools
import json

from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator

from apps.webhooks.services import body_of


@functools.cache
def validators():
    """The document's description of each event type's body, as a JSON Schema validator
    (OpenAPI 3.1's schemas are JSON Schema 2020-12; `$ref`s resolve inside the document)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    found = {}
    for event_type, item in document["webhooks"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        found[event_type] = Draft202012Validator({**document, **body})
    return found


def event_problems(events):
    """What does not match, as `type id: problem` lines, for the events as they are sent."""
    problems = []
    for event in events:
        sent = json.loads(body_of(event))
        for error in validators()[event.type].iter_errors(sent):
            where = "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{event.type} {event.id} at {where or 'the body'}: {error.message}")
    return problems
