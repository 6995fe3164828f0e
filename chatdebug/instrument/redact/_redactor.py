"""Secret redaction applied at capture, before anything is stored or set on a span.

Pure functions, no I/O. A :class:`Redactor` combines the name rules
(headers, URL query parameters, JSON keys; see :mod:`._patterns`) with value
patterns for well-known secret formats, plus optional user rules. It is immutable once
built, so one instance can be shared by every thread; :data:`DEFAULT_REDACTOR` holds the
defaults.

Guarantees:

* output never contains a value a rule matched; anything that cannot be inspected (a
  body that is not JSON where JSON is expected, a URL that does not parse, data nested
  too deeply to walk) is replaced rather than passed through;
* when no rule matched, the very same input object is returned, so stored bodies are
  byte-identical to what went over the wire;
* JSON numbers keep their source literal (no float rounding, no lost digits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeAlias, overload

import orjson

from ._patterns import (
    DEFAULT_PATTERNS,
    EXTRA_VALUES_DIAGNOSTIC,
    JSON_KEY_EXACT,
    JSON_KEY_FRAGMENTS,
    NESTING_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    QUERY_PARAM_EXACT,
    REDACTED,
    SAFE_RATE_LIMIT_HEADERS,
    SENSITIVE_HEADER_FRAGMENTS,
    SENSITIVE_HEADER_NAMES,
    JSONNumber,
    UnusableJSON,
    compile_extra_patterns,
    dumps_json,
    dumps_json_bytes,
    parse_json,
    redact_values,
    skip_json_whitespace,
)
from ._prefilter import Prefilter
from ._url import REDACTED_URL, redact_url

__all__ = [
    "DEFAULT_REDACTOR",
    "EXTRA_VALUES_DIAGNOSTIC",
    "NESTING_DIAGNOSTIC",
    "NOT_JSON_DIAGNOSTIC",
    "REDACTED",
    "REDACTED_URL",
    "HeadersInput",
    "Redactor",
]


HeadersInput: TypeAlias = (
    Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]
)

# Real payloads nest a few dozen levels at most; past this a subtree is replaced instead
# of walked, which keeps well clear of the interpreter's recursion limit.
_MAX_DEPTH: Final = 256


_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*+://[^\s\"'<>]++")
_NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_JSON_TYPES = frozenset({"application/json", "text/json"})


def _as_text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).decode("latin-1")
    return value if isinstance(value, str) else str(value)


def _header_pairs(headers: HeadersInput) -> Iterable[tuple[object, object]]:
    if isinstance(headers, Mapping):
        # httpx.Headers.items() lower-cases names; its ``raw`` list keeps the spelling.
        raw = getattr(headers, "raw", None)
        return raw if isinstance(raw, list) else headers.items()
    return headers


def _lowered_names(names: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(names, str):
        names = (names,)
    lowered = set()
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} entries must be non-empty strings, got {name!r}")
        lowered.add(name.lower())
    return frozenset(lowered)


_HEADER_CACHE_SIZE = 4096
_HEADER_CACHE_VALUE = 512  # longer values (cookies, tokens) are not worth keeping


class Redactor:
    """Redacts secrets from headers, URLs, bodies, text and normalized payloads.

    **Parameters:**

    * ``extra_keys`` — further JSON keys (and query parameters) whose values are always
      redacted, matched exactly and case-insensitively.
    * ``extra_header_names`` — further header names (and query parameters) whose values
      are always redacted, matched exactly and case-insensitively.
    * ``extra_patterns`` — further value patterns (``str`` or compiled ``re.Pattern``);
      every match becomes ``[REDACTED]``, or only the named group ``secret`` when the
      pattern has one. An unusable pattern raises :class:`ValueError` here, at setup.

    Instances are immutable and safe to share between threads.
    """

    __slots__ = (
        "_extra_header_names",
        "_extra_keys",
        "_header_cache",
        "_patterns",
        "_prefilter",
    )

    _extra_header_names: frozenset[str]
    _extra_keys: frozenset[str]
    _patterns: tuple[re.Pattern[str], ...]
    _prefilter: Prefilter | None
    # Lower-cased header name → whether it is sensitive, and (name, value) pairs known to
    # hold no secret. The same headers come back on every call (user agent, SDK headers,
    # content type), so each is checked once. Values that held a secret are never kept.
    # Bounded; a dict's get/set are atomic, so threads may share it.
    _header_cache: dict[str | tuple[str, str], bool]

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        extra_header_names: Iterable[str] = (),
        extra_patterns: Iterable[str | re.Pattern[str]] = (),
    ) -> None:
        if isinstance(extra_patterns, str | re.Pattern):
            extra_patterns = (extra_patterns,)
        object.__setattr__(self, "_extra_keys", _lowered_names(extra_keys, "extra_keys"))
        object.__setattr__(
            self, "_extra_header_names", _lowered_names(extra_header_names, "extra_header_names")
        )
        patterns = DEFAULT_PATTERNS + compile_extra_patterns(extra_patterns)
        object.__setattr__(self, "_patterns", patterns)
        object.__setattr__(self, "_header_cache", {})
        object.__setattr__(
            self,
            "_prefilter",
            Prefilter(self._extra_keys) if len(patterns) == len(DEFAULT_PATTERNS) else None,
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return (
            f"Redactor(extra_keys={sorted(self._extra_keys)!r}, "
            f"extra_header_names={sorted(self._extra_header_names)!r}, "
            f"extra_patterns={len(self._patterns) - len(DEFAULT_PATTERNS)})"
        )

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        """The value patterns in the order they are applied (defaults first)."""
        return self._patterns

    # -- name rules ------------------------------------------------------------------

    def is_sensitive_header(self, name: str) -> bool:
        """Whether a header's value is redacted: an exact sensitive name (or a user extra),
        else a known rate-limit counter is kept, else any sensitive fragment redacts it."""
        lower = name.lower()
        if lower in SENSITIVE_HEADER_NAMES or lower in self._extra_header_names:
            return True
        if lower in SAFE_RATE_LIMIT_HEADERS:
            return False
        return any(fragment in lower for fragment in SENSITIVE_HEADER_FRAGMENTS)

    def is_sensitive_key(self, key: str) -> bool:
        """Whether a JSON key's whole value is redacted (no generic ``token`` rule)."""
        lower = key.lower()
        if lower in JSON_KEY_EXACT or lower in self._extra_keys:
            return True
        return any(fragment in lower for fragment in JSON_KEY_FRAGMENTS)

    def is_sensitive_param(self, name: str) -> bool:
        """Whether a URL query parameter's values are redacted (header or key rules)."""
        lower = name.lower()
        if lower in QUERY_PARAM_EXACT or lower in self._extra_keys:
            return True
        return self.is_sensitive_header(lower) or self.is_sensitive_key(lower)

    # -- headers and URLs ------------------------------------------------------------

    @overload
    def redact_headers(self, headers: None) -> None: ...

    @overload
    def redact_headers(self, headers: HeadersInput) -> dict[str, str]: ...

    def redact_headers(self, headers: HeadersInput | None) -> dict[str, str] | None:
        """Flatten headers into a new dict with sensitive values redacted.

        Accepts a mapping (including ``httpx.Headers``) or ``(name, value)`` pairs of
        ``str`` or ``bytes``. Names keep the spelling of their first occurrence; repeated
        headers are joined with ``", "``. Kept values still pass the value patterns.
        ``None`` gives ``None``. The input is never modified.
        """
        if headers is None:
            return None
        grouped: dict[str, tuple[str, str]] = {}
        for raw_name, raw_value in _header_pairs(headers):
            name = raw_name if type(raw_name) is str else _as_text(raw_name)
            value = raw_value if type(raw_value) is str else _as_text(raw_value)
            lower = name.lower()
            entry = grouped.get(lower)
            grouped[lower] = (name, value) if entry is None else (entry[0], f"{entry[1]}, {value}")
        cache = self._header_cache
        if len(cache) > _HEADER_CACHE_SIZE:
            cache.clear()
        redacted: dict[str, str] = {}
        for lower, (name, value) in grouped.items():
            sensitive = cache.get(lower)
            if sensitive is None:
                sensitive = cache[lower] = self.is_sensitive_header(lower)
            if sensitive:
                redacted[name] = REDACTED
                continue
            key = (lower, value)
            if key not in cache:
                cleaned = self.redact_text(value)
                if cleaned is not value:
                    redacted[name] = cleaned
                    continue
                if len(value) <= _HEADER_CACHE_VALUE:
                    cache[key] = False  # known clean: no pattern matches it
            redacted[name] = value
        return redacted

    def redact_url(self, url: str) -> str:
        """Drop userinfo and redact sensitive query values (as ``%5BREDACTED%5D``).

        The fragment is treated like a query (OAuth implicit flows put tokens there) and
        value patterns apply to the whole URL. Parts that need no change keep their exact
        spelling; a URL that does not parse becomes ``[REDACTED_URL]``.
        """
        return redact_url(url, self._patterns, self.is_sensitive_param)

    def sanitize_error_text(self, text: str) -> str:
        """Redact URLs embedded in an error message, then apply the value patterns."""
        result = _URL_IN_TEXT.sub(lambda match: self.redact_url(match.group(0)), text)
        result = self.redact_text(result)
        return text if result == text else result

    # -- bodies ----------------------------------------------------------------------

    def redact_body(self, body: bytes, content_type: str | None) -> bytes:
        """Redact a captured body according to its ``Content-Type``.

        ``application/x-ndjson`` is redacted per line; JSON types (``application/json``,
        any ``+json`` suffix) and a missing content type are redacted as JSON, failing
        closed; any other type (SSE, plain text, HTML, …) is kept except for value
        pattern matches. Bytes that are not UTF-8 are preserved outside matches.
        """
        if not body:
            return body
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type in _NDJSON_TYPES:
            return self.redact_ndjson(body)
        if not media_type or media_type in _JSON_TYPES or media_type.endswith("+json"):
            return self.redact_json(body)
        return self.redact_bytes(body)

    def redact_bytes(self, data: bytes) -> bytes:
        """Apply the value patterns to raw bytes; returns ``data`` itself if none match."""
        # surrogateescape maps each undecodable byte to a lone surrogate that no pattern
        # matches and that encodes back to the same byte, so the round trip is exact.
        text = bytes(data).decode("utf-8", "surrogateescape")
        redacted = self.redact_text(text)
        return data if redacted is text else redacted.encode("utf-8", "surrogateescape")

    def redact_text(self, text: str) -> str:
        """Apply the value patterns; returns ``text`` itself if none match."""
        return redact_values(text, self._patterns)

    # -- JSON bodies and payloads --------------------------------------------------
    def redact_json(self, body: bytes, *, values: bool = True) -> bytes:
        """Redact a JSON document by key, failing closed on anything else.

        Sensitive keys have their whole value replaced with ``"[REDACTED]"``. With
        ``values`` (the default) every string is also checked against the value patterns
        and strings holding a JSON object or array (tool-call arguments) are redacted
        as JSON too; ``values=False`` applies the key rules only. Empty input
        and input needing no change are returned as is. Input that is not one JSON value
        becomes :data:`NOT_JSON_DIAGNOSTIC` or :data:`EXTRA_VALUES_DIAGNOSTIC` (invalid
        UTF-8 counts as not JSON); nesting too deep to parse gives
        :data:`NESTING_DIAGNOSTIC`.
        """
        if not body:
            return body
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return NOT_JSON_DIAGNOSTIC
        if self._clean(text):
            try:
                orjson.loads(text)  # one valid JSON value: nothing to change
                return body
            except orjson.JSONDecodeError:
                pass  # e.g. NaN or a huge integer: the exact parser below decides
        try:
            document = parse_json(text)
            if self._clean(text):
                return body
            redacted, changed = self._walk(document, 0, values)
        except UnusableJSON as exc:
            return exc.diagnostic
        except RecursionError:
            return NESTING_DIAGNOSTIC
        return dumps_json_bytes(redacted) if changed else body

    def redact_ndjson(self, body: bytes, *, values: bool = True) -> bytes:
        """Redact newline-delimited JSON line by line (see :meth:`redact_json`).

        A malformed line becomes the diagnostic object without affecting other lines;
        blank lines and a final line without a newline are kept.
        """
        if not body:
            return body
        lines = bytes(body).split(b"\n")
        changed = False
        for index, line in enumerate(lines):
            trimmed = line.strip()
            if trimmed:
                redacted = self.redact_json(trimmed, values=values)
                if redacted is not trimmed:
                    lines[index] = redacted
                    changed = True
        return b"\n".join(lines) if changed else body

    # -- normalized payloads ---------------------------------------------------------

    def redact_payload(self, value: Any) -> Any:
        """Return a redacted copy of a normalized payload (dicts, lists, strings).

        Sensitive keys (JSON-key rules) get ``"[REDACTED]"``; every string passes the
        value patterns; strings holding a JSON object or array are redacted as JSON and
        re-serialized compactly if anything changed. Unchanged parts are shared with the
        input, which is never modified.
        """
        try:
            try:
                # orjson (C) first; the prefilter only looks for substrings, which do not
                # depend on separators or on how control characters are escaped.
                text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
            except TypeError:  # huge integers, lone surrogates, very deep nesting
                text = json.dumps(value, ensure_ascii=False, default=str)
            if self._clean(text):
                return value
        except (TypeError, ValueError, RecursionError):
            pass  # not plainly serialisable: the walk below decides
        try:
            return self._walk(value, 0, True)[0]
        except RecursionError:
            return REDACTED

    def _clean(self, text: str) -> bool:
        """Whether ``text`` (JSON) certainly needs no redaction, so the slow walk over
        every node can be skipped. True only when none of the sensitive key names, key
        fragments, value-pattern prefixes or escape sequences occurs anywhere in it and
        it is too shallow to reach the depth limit."""
        if self._prefilter is None:
            return False
        if text.count("{") + text.count("[") > _MAX_DEPTH:
            return False
        return not self._prefilter.search(text.lower())

    def _walk(self, value: Any, depth: int, deep: bool) -> tuple[Any, bool]:
        if depth > _MAX_DEPTH:
            return REDACTED, True
        if isinstance(value, dict):
            items: dict[Any, Any] = {}
            changed = False
            for key, child in value.items():
                new_key = self.redact_text(key) if deep and isinstance(key, str) else key
                changed = changed or new_key is not key
                if isinstance(key, str) and self.is_sensitive_key(key):
                    changed = changed or not (isinstance(child, str) and child == REDACTED)
                    items[new_key] = REDACTED
                    continue
                new_child, child_changed = self._walk(child, depth + 1, deep)
                items[new_key] = new_child
                changed = changed or child_changed
            return (items, True) if changed else (value, False)
        if isinstance(value, list | tuple):
            walked = [self._walk(child, depth + 1, deep) for child in value]
            if not any(child_changed for _, child_changed in walked):
                return value, False
            new_items = [child for child, _ in walked]
            return (tuple(new_items) if isinstance(value, tuple) else new_items), True
        if not deep or isinstance(value, JSONNumber):
            return value, False
        if isinstance(value, str):
            new_text = self._redact_string(value, depth)
            return new_text, new_text is not value
        if isinstance(value, bytes):
            new_bytes = self.redact_bytes(value)
            return new_bytes, new_bytes is not value
        return value, False

    def _redact_string(self, text: str, depth: int) -> str:
        start = skip_json_whitespace(text, 0)
        if text[start : start + 1] in ("{", "["):
            try:
                parsed = parse_json(text)
            except UnusableJSON as exc:
                if exc.diagnostic is NESTING_DIAGNOSTIC:
                    return REDACTED
            else:
                new_value, changed = self._walk(parsed, depth + 1, True)
                return dumps_json(new_value) if changed else text
        return self.redact_text(text)


DEFAULT_REDACTOR: Final = Redactor()
"""The redactor with the default rules and no user extras."""
