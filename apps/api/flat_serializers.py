"""A flat serializer's work without the serializer around it, for the fast lane's two shapes
(consume and check), where DRF's per-request machinery (field lists rebuilt as generators,
`validate_<field>` lookups, error collection, attribute paths walked through `Mapping`
checks) cost more CPU than the fields themselves. Built from the views' serializers, so the
fields, their rules and their order stay defined once; tests/api/test_fast_lane.py holds the
two equal to the serializers on generated input."""

from operator import attrgetter

from rest_framework import serializers
from rest_framework.fields import SkipField, empty


def _plain_fields(serializer):
    """The serializer's fields, refused unless each is a plain field under its own name and
    nothing in the serializer judges the whole (what these classes leave out)."""
    cls = type(serializer)
    if cls.validate is not serializers.Serializer.validate or serializer.get_validators():
        raise TypeError(f"{cls.__name__} validates the whole: use the serializer")
    fields = serializer.fields
    for name, field in fields.items():
        if isinstance(field, serializers.BaseSerializer) or field.source == "*":
            raise TypeError(f"{cls.__name__}.{name} is not a plain field")
        if hasattr(serializer, f"validate_{name}"):
            raise TypeError(f"{cls.__name__}.validate_{name}: use the serializer")
    return fields


class FlatInput:
    """`serializer.run_validation(data)` for a JSON object, raising ValidationError (without
    the serializer's details) where it would."""

    def __init__(self, serializer):
        fields = _plain_fields(serializer)
        for name, field in fields.items():
            if field.read_only or field.source != name:
                raise TypeError(f"{type(serializer).__name__}.{name}: use the serializer")
        self.fields = [(name, field.run_validation) for name, field in fields.items()]

    def __call__(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("not a JSON object")
        valid = {}
        for name, run_validation in self.fields:
            try:  # noqa: SIM105 (suppress() would cost a context manager per field)
                valid[name] = run_validation(data.get(name, empty))
            except SkipField:  # not given, and no default
                pass
        return valid


class FlatOutput:
    """`serializer.to_representation(instance)` for an object whose fields are attributes
    (not dicts, not methods)."""

    def __init__(self, serializer):
        fields = _plain_fields(serializer)
        for name, field in fields.items():
            if field.write_only:
                raise TypeError(f"{type(serializer).__name__}.{name}: use the serializer")
        self.fields = [
            (name, attrgetter(field.source), field.to_representation)
            for name, field in fields.items()
        ]

    def __call__(self, instance):
        data = {}
        for name, read, to_representation in self.fields:
            value = read(instance)
            data[name] = None if value is None else to_representation(value)
        return data
