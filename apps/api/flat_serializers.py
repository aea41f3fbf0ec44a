"""A flat serializer's work without the serializer around it, for the fast lane's two shapes
(consume and check), where DRF's per-request machinery (field lists rebuilt as generators,
`validate_<field>` lookups, error collection, attribute paths walked through `Mapping`
checks) cost more CPU than the fields themselves. Built from the views' serializers, so the
fields, their rules and their order stay defined once; tests/api/test_flat_serializers.py
holds the two equal to the serializers on generated input."""

from operator import attrgetter

from rest_framework import serializers
from rest_framework.fields import empty


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
    the serializer's details) where it would.

    A field whose validation depends on nothing but the value (`pure_validation`) keeps the
    valid values it has seen, up to MEMO_SIZE: an app sends the same account ids, feature
    codes and quantities over and over, and each pass of DRF's validators costs more than
    the lookup. Only strings and integers are kept, by type and value (1 and "1" differ)."""

    MEMO_SIZE = 4096

    def __init__(self, serializer):
        fields = _plain_fields(serializer)
        for name, field in fields.items():
            if field.read_only or field.source != name:
                raise TypeError(f"{type(serializer).__name__}.{name}: use the serializer")
        self.fields = [
            (name, field.run_validation, {} if getattr(field, "pure_validation", False) else None,
             _when_missing(field))
            for name, field in fields.items()
        ]  # fmt: skip

    def __call__(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("not a JSON object")
        valid = {}
        for name, run_validation, memo, missing in self.fields:
            value = data.get(name, empty)
            if value is empty:
                if missing is not SKIP:  # (DRF would raise SkipField: dearer than this test)
                    valid[name] = missing()
            elif memo is not None and type(value) in MEMO_TYPES:
                key = (type(value), value)
                try:
                    valid[name] = memo[key]
                except KeyError:
                    if len(memo) >= self.MEMO_SIZE:
                        memo.clear()
                    valid[name] = memo[key] = run_validation(value)
            else:
                valid[name] = run_validation(value)
        return valid


SKIP = object()


def _when_missing(field):
    """What Field.run_validation does with a value not given (validate_empty_values): SKIP,
    or a function that returns the default or raises the field's `required` error."""
    if field.required:
        return lambda: field.fail("required")
    if field.default is empty:
        return SKIP
    return field.get_default


MEMO_TYPES = (str, int)  # not bool, whose type is its own


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
