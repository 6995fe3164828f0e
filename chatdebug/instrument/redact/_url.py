"""URL redaction: userinfo dropped, credentials in the query and fragment replaced, the
value patterns applied to the rest, every untouched part kept as it was spelled."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import quote_plus, unquote_plus, urlsplit

from ._patterns import redact_values

__all__ = ["ENCODED_REDACTED", "REDACTED_URL", "redact_url"]

REDACTED_URL: Final = "[REDACTED_URL]"
ENCODED_REDACTED: Final = "%5BREDACTED%5D"
_PARAM_SEPARATORS = re.compile(r"([&;])")
_URL_IGNORED_PREFIX = "".join(chr(c) for c in range(0x21))


def redact_url(
    url: str, patterns: Sequence[re.Pattern[str]], is_sensitive_param: Callable[[str], bool]
) -> str:
    """``url`` with userinfo dropped, the values of parameters ``is_sensitive_param``
    names replaced by ``%5BREDACTED%5D`` and ``patterns`` applied to everything else;
    ``url`` itself when nothing changed, ``[REDACTED_URL]`` when it does not parse."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return REDACTED_URL
    # urlsplit ignores leading controls/spaces and drops tabs and newlines anywhere;
    # follow it so the raw offsets below line up with what it parsed.
    text = url.lstrip(_URL_IGNORED_PREFIX).replace("\t", "").replace("\r", "")
    text = text.replace("\n", "")
    if "@" in parts.netloc:
        start = len(parts.scheme) + 1 if parts.scheme else 0
        end = start + 2 + len(parts.netloc)
        if text[start:end].lower() != "//" + parts.netloc.lower():
            return REDACTED_URL
        text = text[: start + 2] + parts.netloc.rpartition("@")[2] + text[end:]
    base, hash_mark, fragment = text.partition("#")
    head, question_mark, query = base.partition("?")
    result = (
        redact_values(head, patterns, ENCODED_REDACTED)
        + question_mark
        + _redact_params(query, patterns, is_sensitive_param)
        + hash_mark
        + _redact_params(fragment, patterns, is_sensitive_param)
    )
    return url if result == url else result


def _redact_params(
    params: str, patterns: Sequence[re.Pattern[str]], is_sensitive_param: Callable[[str], bool]
) -> str:
    if not params:
        return params
    # ';' is split on too: some servers accept it as a separator, so a credential
    # hidden behind one must not survive.
    pieces = _PARAM_SEPARATORS.split(params)
    for index in range(0, len(pieces), 2):
        raw_name, equals, raw_value = pieces[index].partition("=")
        if equals and is_sensitive_param(unquote_plus(raw_name)):
            pieces[index] = raw_name + "=" + ENCODED_REDACTED
            continue
        name, value = unquote_plus(raw_name), unquote_plus(raw_value)
        new_name, new_value = redact_values(name, patterns), redact_values(value, patterns)
        if new_name is not name or new_value is not value:
            pieces[index] = quote_plus(new_name) + equals + quote_plus(new_value)
    return "".join(pieces)
