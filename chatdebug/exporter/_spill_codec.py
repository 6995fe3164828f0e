"""Store events as bytes for the spill journal, and back.

An event is written as ``[kind, fields]`` in JSON, every field value tagged with its
type so that it comes back as the same Python value: ids as :class:`uuid.UUID`, times as
aware :class:`~datetime.datetime`, the parameter objects of the store contract
(``NewRun``, ``StepUpdate``, …) as themselves, payloads already encoded for the store as
:class:`~chatdebug.store.EncodedJSON`, and the :data:`~chatdebug.store.CLEAR` sentinel.
Plain payloads (a summary seed, a step's request) are JSON as the store itself would
store them. Nothing in a journal can make the reader run code: it is data only.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime
from typing import Any, Final

import orjson

from ..store import CLEAR, Clear, EncodedJSON, NewRun, NewStep, RunUpdate, StepUpdate, encode_json
from ._events import (
    CreateRun,
    CreateStep,
    Event,
    FinishRun,
    StepProgress,
    TouchRun,
    TouchStep,
    UpdateStep,
)

__all__ = ["SpillCodecError", "decode_event", "encode_event"]

_EVENTS: Final[dict[str, type[Any]]] = {
    cls.kind: cls
    for cls in (CreateRun, FinishRun, TouchRun, CreateStep, UpdateStep, TouchStep, StepProgress)
}
_PARAMS: Final[dict[str, type[Any]]] = {
    cls.__name__: cls for cls in (NewRun, NewStep, RunUpdate, StepUpdate)
}


class SpillCodecError(ValueError):
    """A journal record that is not an event this version can read."""


def _plain(value: Any) -> Any:
    """A JSON value as the store would keep it (odd floats and characters cleaned)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return json.loads(encode_json(value))
    return value


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, EncodedJSON):
        return ["j", str(value)]
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, Clear):
        return ["c"]
    if isinstance(value, tuple):
        return ["s", [_encode_value(item) for item in value]]
    if dataclasses.is_dataclass(value) and type(value).__name__ in _PARAMS:
        return ["d", type(value).__name__, _fields(value)]
    return ["v", _plain(value)]


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: _encode_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _decode_value(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    tag = value[0]
    if tag == "j":
        return EncodedJSON(value[1])
    if tag == "u":
        return uuid.UUID(value[1])
    if tag == "t":
        return datetime.fromisoformat(value[1])
    if tag == "c":
        return CLEAR
    if tag == "s":
        return tuple(_decode_value(item) for item in value[1])
    if tag == "d":
        cls = _PARAMS.get(value[1])
        if cls is None:
            raise SpillCodecError(f"unknown parameter type {value[1]!r}")
        return cls(**_decode_fields(value[2]))
    if tag == "v":
        return value[1]
    raise SpillCodecError(f"unknown value tag {tag!r}")


def _decode_fields(fields: dict[str, Any]) -> dict[str, Any]:
    # Most values are plain (a string, a number, None): only tagged ones are lists.
    return {
        name: _decode_value(item) if type(item) is list else item for name, item in fields.items()
    }


def encode_event(event: Event) -> bytes:
    """``event`` as journal bytes."""
    return orjson.dumps([event.kind, _fields(event)])


def decode_event(data: bytes) -> Event:
    """The event ``data`` holds; :class:`SpillCodecError` when it cannot be read."""
    try:
        kind, fields = orjson.loads(data)
        cls = _EVENTS[kind]
        if cls is UpdateStep and "priced" not in fields:
            fields["priced"] = True  # journaled by a version that priced before journaling
        event: Event = cls(**_decode_fields(fields))
    except SpillCodecError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise SpillCodecError(f"unreadable journal record: {exc}") from exc
    return event
