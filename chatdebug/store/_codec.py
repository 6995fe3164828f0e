"""Encoding of JSON payloads and timestamps, shared by both backends.

Writing never fails on odd values: non-finite floats become ``null``, NUL characters and
lone surrogates (which PostgreSQL's JSONB and UTF-8 reject) become U+FFFD, and values JSON
does not know (bytes, datetimes, UUIDs, sets, anything else) get a string or list form.
Reading never fails either: a payload that cannot be decoded comes back as a diagnostic
object instead of an exception, so one bad row cannot hide a whole run.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

__all__ = [
    "EncodedJSON",
    "dump_json",
    "encode_json",
    "format_timestamp",
    "load_attempts",
    "load_object",
    "load_optional_object",
    "parse_timestamp",
    "utc",
]

MALFORMED_PAYLOAD: Final = "malformed debug payload"
MALFORMED_ATTEMPTS: Final = "malformed attempts payload"

# Characters neither JSONB (NUL) nor UTF-8 (lone surrogates) can hold.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _clean(value: Any) -> Any:
    """A copy of ``value`` with unstorable floats and characters replaced."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {
            _clean(str(k) if not isinstance(k, str) else k): _clean(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview | datetime | date | uuid.UUID):
        return _default(value)
    if value is None or isinstance(value, bool | int):
        return value
    return _clean(_default(value))


def _dumps(value: Any) -> str:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    )


class EncodedJSON(str):
    """JSON text already made storable by :func:`encode_json`; written as is.

    A payload can be encoded when it is produced, so that what waits in a queue for the
    database is one string instead of a tree of dicts and lists: the cyclic garbage
    collector walks every container that survives a young-generation pass, and a
    writer's backlog of decoded payloads made each of those passes (on whatever thread
    triggered it, usually the application's) several times longer.
    """

    __slots__ = ()


def _fast_utf8(value: Any) -> bytes | None:
    """orjson's encoding of ``value`` when the databases take it as is, else ``None``.

    orjson (C) goes first: every payload of every step is encoded. It writes non-finite
    floats as null and refuses what it cannot store faithfully (lone surrogates,
    non-string keys, huge ints), which the stdlib path handles. Its output is valid
    UTF-8: only a NUL needs a second look.
    """
    try:
        raw = orjson.dumps(value, default=_default)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        return None
    return None if b"\\u0000" in raw else raw


def encode_json(value: Any) -> EncodedJSON:
    """``value`` encoded once, as :func:`dump_json` would write it."""
    if type(value) is EncodedJSON:
        return value
    raw = _fast_utf8(value)
    return EncodedJSON(dump_json(value)) if raw is None else EncodedJSON(raw, "utf-8")


def dump_json(value: Any) -> str:
    """Compact JSON text for ``value`` that both databases accept."""
    if type(value) is EncodedJSON:
        return value
    raw = _fast_utf8(value)
    if raw is not None:
        return raw.decode()
    try:
        text = _dumps(value)
    except (ValueError, TypeError):  # NaN/inf, or keys JSON cannot take
        return _dumps(_clean(value))
    # The fast path above is the common one; a second pass is needed only when the text
    # holds something the database would reject (JSON escapes NUL as \u0000; a lone
    # surrogate fails to encode).
    if "\\u0000" in text:
        return _dumps(_clean(value))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _dumps(_clean(value))
    return text


def _malformed(kind: str, raw: str, problem: str) -> dict[str, Any]:
    return {"error": kind, "parse_error": problem, "raw": raw}


def _decode(raw: str | bytes) -> tuple[Any, str | None]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError:
        pass  # the stdlib decoder says what is wrong, in its usual words
    try:
        return json.loads(text), None
    except ValueError as exc:
        return text, str(exc)


def load_optional_object(raw: str | bytes | None) -> dict[str, Any] | None:
    """A nullable JSON object column: SQL NULL and JSON ``null`` give ``None``."""
    if raw is None:
        return None
    value, problem = _decode(raw)
    if problem is not None:
        return _malformed(MALFORMED_PAYLOAD, value, problem)
    if value is None or isinstance(value, dict):
        return value
    return _malformed(MALFORMED_PAYLOAD, _as_text(raw), "expected a JSON object")


def load_object(raw: str | bytes | None) -> dict[str, Any]:
    """A non-null JSON object column: JSON ``null`` (or SQL NULL) gives ``{}``."""
    value = load_optional_object(raw)
    return {} if value is None else value


def load_attempts(raw: str | bytes | None) -> list[dict[str, Any]]:
    """The ``attempts`` column: a list of objects; ``null`` gives ``[]``."""
    if raw is None:
        return []
    value, problem = _decode(raw)
    if problem is not None:
        return [_malformed(MALFORMED_ATTEMPTS, value, problem)]
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    return [_malformed(MALFORMED_ATTEMPTS, _as_text(raw), "expected a JSON array of objects")]


def _as_text(raw: str | bytes) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Fixed-width UTC text (``2024-05-01T12:00:00.000000Z``) that sorts in time order."""
    return utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp`; also accepts other ISO-8601 forms."""
    return utc(datetime.fromisoformat(text))
