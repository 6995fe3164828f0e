"""The JSON half of :class:`~chatdebug.instrument._redact.Redactor`: bodies and
normalized payloads walked node by node, sensitive keys replaced, value patterns applied
to strings (JSON nested inside a string included), numbers kept as spelled."""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

from chatdebug.instrument._redact_patterns import (
    NESTING_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    REDACTED,
    JSONNumber,
    UnusableJSON,
    dumps_json,
    dumps_json_bytes,
    parse_json,
    skip_json_whitespace,
)
from chatdebug.instrument._redact_prefilter import Prefilter

__all__ = ["JSONRedaction"]

# Real payloads nest a few dozen levels at most; past this a subtree is replaced instead
# of walked, which keeps well clear of the interpreter's recursion limit.
_MAX_DEPTH: Final = 256


class JSONRedaction:
    """Mixin of :class:`~chatdebug.instrument._redact.Redactor` (which provides the
    rules: the value patterns, the key rule, the prefilter)."""

    __slots__ = ()

    _patterns: tuple[re.Pattern[str], ...]
    _prefilter: Prefilter | None

    def is_sensitive_key(self, key: str) -> bool:
        raise NotImplementedError

    def redact_text(self, text: str) -> str:
        raise NotImplementedError

    def redact_bytes(self, data: bytes) -> bytes:
        raise NotImplementedError

    def redact_json(self, body: bytes, *, values: bool = True) -> bytes:
        """Redact a JSON document by key, failing closed on anything else.

        Sensitive keys have their whole value replaced with ``"[REDACTED]"``. With
        ``values`` (the default) every string is also checked against the value patterns
        and strings holding a JSON object or array (tool-call arguments) are redacted
        as JSON too; ``values=False`` applies the reference's key rules only. Empty input
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
