"""Rules and low-level helpers used by :mod:`chatdebug.instrument.redact._redactor`.

Two kinds of rule live here, next to the number-preserving JSON codec that body
redaction parses and re-serialises with:

* **Name rules** decide from a header name, query-parameter name or JSON key alone that
  the value it carries is a credential, in a fixed order (exact names, then known
  non-secret rate-limit counters, then fragments).
* **Value patterns** recognise well-known secret formats wherever they appear (a
  provider key pasted into a prompt, a JWT echoed in an error message). Every default
  pattern is linear-time: each starts at a literal marker or behind a lookbehind that
  refuses to begin inside a run of the characters it then consumes, its repetitions
  are possessive, and a PEM body cannot run past the next five-dash marker, so no
  input makes the engine rescan a stretch of text more than a bounded number of times.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any, Final

__all__ = [
    "DEFAULT_PATTERNS",
    "EXTRA_VALUES_DIAGNOSTIC",
    "JSON_KEY_EXACT",
    "JSON_KEY_FRAGMENTS",
    "NESTING_DIAGNOSTIC",
    "NOT_JSON_DIAGNOSTIC",
    "QUERY_PARAM_EXACT",
    "REDACTED",
    "SAFE_RATE_LIMIT_HEADERS",
    "SENSITIVE_HEADER_FRAGMENTS",
    "SENSITIVE_HEADER_NAMES",
    "JSONNumber",
    "UnusableJSON",
    "compile_extra_patterns",
    "dumps_json",
    "dumps_json_bytes",
    "parse_json",
    "redact_values",
    "skip_json_whitespace",
]

REDACTED = "[REDACTED]"

# Header names checked first: always redacted, whatever else the name looks like.
SENSITIVE_HEADER_NAMES = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "set-cookie"}
)

# Checked second: rate-limit counters whose names contain "token" but carry no secret.
# The anthropic-priority-* and anthropic-fast-* families are newer Anthropic headers of
# the same kind, kept too.
SAFE_RATE_LIMIT_HEADERS = frozenset(
    [
        f"anthropic-ratelimit-{kind}-{field}"
        for kind in ("requests", "tokens", "input-tokens", "output-tokens")
        for field in ("limit", "remaining", "reset")
    ]
    + [
        f"anthropic-{tier}-{kind}-tokens-{field}"
        for tier in ("priority", "fast")
        for kind in ("input", "output")
        for field in ("limit", "remaining", "reset")
    ]
    + [
        f"x-ratelimit-{field}-{kind}"
        for field in ("limit", "remaining", "reset")
        for kind in ("requests", "tokens")
    ]
)

# Checked last: substrings that make any other header (or query parameter) sensitive.
SENSITIVE_HEADER_FRAGMENTS = ("api-key", "api_key", "apikey", "token", "secret", "bearer")

# Auth-related JSON keys matched exactly (lower-cased). There is deliberately no
# generic "token" fragment, so usage counters such as input_tokens survive.
JSON_KEY_EXACT = frozenset(
    {
        "token",
        "access_token",
        "accesstoken",
        "refresh_token",
        "refreshtoken",
        "id_token",
        "idtoken",
        "api_token",
        "apitoken",
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "auth_token",
        "authtoken",
        "bearer_token",
        "bearertoken",
        "session_token",
        "sessiontoken",
        "security_token",
        "securitytoken",
        "private_key",
        "privatekey",
        "signing_key",
        "signingkey",
        "secret_key",
        "secretkey",
    }
)

# Fragments that make a JSON key sensitive wherever they occur in it.
JSON_KEY_FRAGMENTS = ("secret", "password", "authorization", "credential")

# Query parameters that carry credentials under names neither rule set above catches.
# Gemini sends its API key as ``?key=``, which HTTP instrumentations commonly leak; the
# others are the request signatures of pre-signed cloud-storage URLs.
QUERY_PARAM_EXACT = frozenset(
    {"key", "sig", "signature", "x-goog-signature", "x-amz-signature", "awsaccesskeyid"}
)

_KEY_CHARS = r"A-Za-z0-9_\-"


def _starts_after(chars: str) -> str:
    """A start boundary: not right after one of ``chars``, unless they end a JSON escape.

    Raw bodies (SSE events, text/plain uploads) hold JSON text, where a tab before a key
    is the two characters ``\\t`` and a non-ASCII letter is ``\\u00e5``: the letter or hex
    digit that ends the escape must not hide the key behind it. Each alternative is a
    fixed-width lookbehind, so the patterns stay linear-time.
    """
    return rf"(?:(?<![{chars}])|(?<=\\[bfnrt])|(?<=\\u[0-9A-Fa-f]{{4}}))"


_KEY_START = _starts_after(_KEY_CHARS)

DEFAULT_PATTERNS: tuple[re.Pattern[str], ...] = (
    # PEM private keys, the whole block. The body may contain anything but the
    # five-dash run that starts the next marker, so a BEGIN without a matching END
    # stops scanning at the next marker instead of at the end of the input; in that
    # case the second branch still removes the key material that follows the marker,
    # up to the next BEGIN (which is a match of its own): a run of BEGIN markers costs
    # one pass over the input, not one pass per marker.
    re.compile(
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[^-]*+(?:-(?!----)[^-]*+)*+-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:[A-Za-z0-9+/=\s\\:,.]|-(?!----BEGIN))*+)"
    ),
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-) keys. A
    # short tail or a digit-free one of under 32 characters is ordinary hyphenated
    # text ("sk-learn"), not a key.
    re.compile(
        rf"{_KEY_START}sk-(?:(?=[{_KEY_CHARS}]*[0-9])[{_KEY_CHARS}]{{20,}}+"
        rf"|[{_KEY_CHARS}]{{32,}}+)"
    ),
    # Google API keys.
    re.compile(rf"{_KEY_START}AIza[{_KEY_CHARS}]{{35}}"),
    # AWS access key ids (long-term AKIA, temporary ASIA).
    re.compile(_starts_after("A-Za-z0-9") + r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    # JWTs: base64url header starting with '{"', payload, optional signature.
    re.compile(
        rf"{_KEY_START}eyJ[{_KEY_CHARS}]{{5,}}+\.[{_KEY_CHARS}]{{5,}}+"
        rf"\.[{_KEY_CHARS}]*+"
    ),
    # "Bearer <token>": only the token is replaced so the scheme stays readable. Prose
    # such as "Bearer authentication" is left alone by requiring a digit or length.
    re.compile(
        _KEY_START + r"bearer\s++(?P<secret>"
        r"(?:(?=[A-Za-z0-9._~+/\-]*[0-9])[A-Za-z0-9._~+/\-]{12,}+"
        r"|[A-Za-z0-9._~+/\-]{24,}+)=*+)",
        re.IGNORECASE | re.ASCII,
    ),
)


# Every default pattern starts with one of these literals: one quick search tells whether
# any of them can match, so ordinary text (nearly all of it) skips the six full scans.
_DEFAULT_TRIGGERS = ("sk-", "AIza", "AKIA", "ASIA", "eyJ", "-----BEGIN")
DEFAULT_VALUE_TRIGGERS = ("sk-", "aiza", "akia", "asia", "eyj", "-----begin", "bearer")
"""The same prefixes lower-cased (``bearer`` for the case-insensitive Bearer pattern)."""
_DEFAULT_SET = frozenset(DEFAULT_PATTERNS)


def _defaults_possible(text: str) -> bool:
    # Plain substring tests are far cheaper than a case-insensitive regex alternation.
    for trigger in _DEFAULT_TRIGGERS:
        if trigger in text:
            return True
    return "earer" in text.lower()


def compile_extra_patterns(
    patterns: Iterable[str | re.Pattern[str]],
) -> tuple[re.Pattern[str], ...]:
    """Compile user-supplied value patterns, failing loudly on any unusable one.

    Raises :class:`ValueError` for a pattern that does not compile, is not a text
    pattern, or matches the empty string (which would insert the placeholder between
    every two characters).
    """
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                raise ValueError(f"redaction pattern {pattern.pattern!r} must be a text pattern")
            candidate = pattern
        elif isinstance(pattern, str):
            try:
                candidate = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid redaction pattern {pattern!r}: {exc}") from exc
        else:
            raise ValueError(f"redaction pattern {pattern!r} must be a str or a compiled regex")
        if candidate.fullmatch("") is not None:
            raise ValueError(f"redaction pattern {candidate.pattern!r} matches the empty string")
        compiled.append(candidate)
    return tuple(compiled)


def redact_values(
    text: str, patterns: Sequence[re.Pattern[str]], replacement: str = REDACTED
) -> str:
    """Replace every match of ``patterns`` in ``text`` with ``replacement``.

    A pattern with a named group ``secret`` has only that group replaced. Every pattern
    is matched against the original text, matches may overlap and overlapping ones are
    merged, so one match consuming the context of another (a ``Bearer`` token swallowing the prefix
    that a user pattern anchors on) never leaves the other's secret behind. The very
    same ``text`` object is returned when nothing matched.
    """
    defaults_possible = _defaults_possible(text)
    spans: list[tuple[int, int]] = []
    for pattern in patterns:
        if not defaults_possible and pattern in _DEFAULT_SET:
            continue
        secret_group = "secret" in pattern.groupindex
        # Searching again from just after each match's start (not its end) also finds a
        # match that begins inside the previous one ("bearer a1b2…//BEARER c3d4…": the
        # first token swallows the second's scheme). Every pattern starts at a literal or
        # behind a lookbehind, so each restart fails at once and the scan stays linear.
        match = pattern.search(text)
        while match is not None:
            if secret_group and match.start("secret") >= 0:
                spans.append(match.span("secret"))
            else:
                spans.append(match.span())
            match = pattern.search(text, match.start() + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    position = 0
    merged_start, merged_end = spans[0]
    for start, end in spans[1:]:
        if start < merged_end:  # overlapping: one redaction covers both
            merged_end = max(merged_end, end)
            continue
        out += (text[position:merged_start], replacement)
        position, (merged_start, merged_end) = merged_end, (start, end)
    out += (text[position:merged_start], replacement, text[merged_end:])
    return "".join(out)


# -- JSON codec ------------------------------------------------------------------------

NOT_JSON_DIAGNOSTIC: Final = b'{"error":"chatdebug: body is not valid JSON, redacted for safety"}'
EXTRA_VALUES_DIAGNOSTIC: Final = (
    b'{"error":"chatdebug: body contains extra JSON values, redacted for safety"}'
)
NESTING_DIAGNOSTIC: Final = b'{"error":"chatdebug: body is nested too deeply, redacted for safety"}'

_JSON_WS = re.compile(r"[ \t\n\r]*")


class JSONNumber(str):
    """A JSON number kept as its source literal so re-serialising never alters it."""

    __slots__ = ()


class UnusableJSON(Exception):
    """Raised by :func:`parse_json`; ``diagnostic`` is the body to store instead."""

    def __init__(self, diagnostic: bytes) -> None:
        super().__init__(diagnostic)
        self.diagnostic = diagnostic


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON: rejected, like any other token that is not.
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(
    parse_float=JSONNumber, parse_int=JSONNumber, parse_constant=_reject_constant
)


def skip_json_whitespace(text: str, pos: int) -> int:
    """Index of the first non-whitespace character (JSON's definition) at or after pos."""
    match = _JSON_WS.match(text, pos)
    return match.end() if match else pos


def parse_json(text: str) -> Any:
    """Parse exactly one JSON value, numbers as :class:`JSONNumber`.

    Raises :class:`UnusableJSON` carrying the matching fail-closed diagnostic.
    """
    start = skip_json_whitespace(text, 0)
    try:
        value, end = _DECODER.raw_decode(text, start)
    except RecursionError:
        raise UnusableJSON(NESTING_DIAGNOSTIC) from None
    except ValueError:
        raise UnusableJSON(NOT_JSON_DIAGNOSTIC) from None
    if skip_json_whitespace(text, end) != len(text):
        raise UnusableJSON(EXTRA_VALUES_DIAGNOSTIC)
    return value


def _dump(value: Any, out: list[str], encode: Callable[[str], str]) -> None:
    if isinstance(value, JSONNumber):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(encode(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, child) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(encode(str(key)))
            out.append(":")
            _dump(child, out, encode)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, child in enumerate(value):
            if index:
                out.append(",")
            _dump(child, out, encode)
        out.append("]")
    elif isinstance(value, int | float):
        out.append(json.dumps(value))
    else:
        out.append(encode(str(value)))


def dumps_json(value: Any) -> str:
    """Serialise compactly, keeping key order and number literals, non-ASCII as is."""
    out: list[str] = []
    _dump(value, out, encode_basestring)
    return "".join(out)


def dumps_json_bytes(value: Any) -> bytes:
    """:func:`dumps_json` encoded as UTF-8 (ASCII-escaped if that is impossible)."""
    try:
        return dumps_json(value).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a "\ud800" escape) has no UTF-8 form; escape everything.
        out: list[str] = []
        _dump(value, out, encode_basestring_ascii)
        return "".join(out).encode("ascii")
