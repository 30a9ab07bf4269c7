"""Typed, frozen option schemas for components, validated with errors that teach.

A component's options are a frozen dataclass whose field defaults are its paper's
preset; :func:`option` attaches bounds and a one-line doc to a field. The grid
validator calls :func:`parse_options` with the user's overrides.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, get_args, get_origin

from evalgrid.errors import choices_sentence, did_you_mean


class InvalidOption(Exception):
    """An option value that does not fit its schema. ``key`` is relative to the options table."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def option(default: Any, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False, doc: str = "", in_id_at_default: bool = True,
           choices: Callable[[], Iterable[str]] | None = None) -> Any:
    """A dataclass field with bounds: ``minimum``/``maximum`` inclusive, ``positive`` means > 0.
    ``choices``, for a string option, gives its valid values when a grid is read (names in a
    registry that installed packages may extend, e.g. label inference rules).

    ``in_id_at_default=False`` leaves the option out of the canonical config (and so out of
    the cell id) while it holds its default: for an option added to a component after grids
    were run, whose default changes nothing, so that those grids' cells keep their ids."""
    return dataclasses.field(default=default, metadata={
        "minimum": minimum, "maximum": maximum, "positive": positive, "doc": doc,
        "in_id_at_default": in_id_at_default, "choices": choices})


def option_names(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def parse_options(schema: type, raw: Mapping[str, Any], *, base: Any = None) -> Any:
    """Build ``schema`` from ``raw`` on top of ``base`` (default: the preset), checking every value."""
    base = base if base is not None else schema()
    hints, fields = _schema(schema)
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise InvalidOption(key, f"unknown option {key!r}.{did_you_mean(key, fields)} "
                                     f"Valid options: {', '.join(fields) or '(none)'}.")
        values[key] = _check_value(key, value, hints[key], fields[key].metadata)
    return dataclasses.replace(base, **values)


@functools.cache
def _schema(schema: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """A schema's resolved type hints and fields, by name: computed once per class (a grid with
    [[exclude]] rules parses the same options tens of thousands of times)."""
    return typing.get_type_hints(schema), {f.name: f for f in dataclasses.fields(schema)}


def options_dict(options: Any) -> dict[str, Any]:
    """The options as a plain dict, in schema order (for canonical configs)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def canonical_options(options: Any) -> dict[str, Any]:
    """The options that identify a config: every option, except one marked
    ``in_id_at_default=False`` that holds its default."""
    return {f.name: value for f in dataclasses.fields(options)
            if (value := getattr(options, f.name)) != f.default or f.metadata.get("in_id_at_default", True)}


def describe_type(annotation: Any, choices: Callable[[], Iterable[str]] | None = None) -> str:
    if choices is not None:
        return "one of " + ", ".join(repr(c) for c in choices())
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        annotation, str(annotation))


def _check_value(key: str, value: Any, annotation: Any, meta: Mapping[str, Any]) -> Any:
    if get_origin(annotation) is Literal:
        allowed = get_args(annotation)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise InvalidOption(key, f"{value!r} is not allowed.{did_you_mean(value, map(str, allowed))} "
                                     f"{choices_sentence(map(str, allowed))}")
        return value
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidOption(key, f"{value!r} is not a finite number.")
    elif annotation is str:
        ok = isinstance(value, str)
        choices = meta.get("choices")
        if ok and choices is not None and value not in (allowed := list(choices())):
            raise InvalidOption(key, f"{value!r} is not allowed.{did_you_mean(value, allowed)} "
                                     f"{choices_sentence(allowed)}")
    else:  # pragma: no cover - a schema author's mistake, not a user's
        raise TypeError(f"option {key!r} has unsupported type {annotation!r}")
    if not ok:
        raise InvalidOption(key, f"expected {describe_type(annotation)}, got {value!r} "
                                 f"({type(value).__name__}).")
    _check_bounds(key, value, meta)
    return value


def _check_bounds(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if meta.get("positive") and not value > 0:
        raise InvalidOption(key, f"{value!r} is out of range: must be > 0.")
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is not None and value < low:
        raise InvalidOption(key, f"{value!r} is out of range: must be >= {low}.")
    if high is not None and value > high:
        raise InvalidOption(key, f"{value!r} is out of range: must be <= {high}.")
