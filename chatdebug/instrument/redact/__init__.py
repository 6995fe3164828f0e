"""Secret redaction, applied at capture before anything is stored or set on a span.

:class:`Redactor` holds the rules (header, query-parameter and JSON-key names, value
patterns for well-known secret formats, the user's extras) and applies them to headers,
URLs, bodies, text and normalized payloads; :data:`DEFAULT_REDACTOR` is the one with the
default rules.
"""

from ._redactor import (
    DEFAULT_REDACTOR,
    EXTRA_VALUES_DIAGNOSTIC,
    NESTING_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    REDACTED,
    REDACTED_URL,
    HeadersInput,
    Redactor,
)

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
