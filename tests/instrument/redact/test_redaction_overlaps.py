"""Value patterns in the places the redaction fuzzing found them slipping through: behind
a JSON escape in raw bodies, in a URL path, and where one match starts inside another."""

from __future__ import annotations

import pytest

from chatdebug.instrument import Redactor
from chatdebug.instrument.normalize import detect

OPENAI_KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
AWS_KEY = "AKIAZ29KU10Q24AP8BUH"
GOOGLE_KEY = "AIza" + "Sy9" + "x" * 32


@pytest.mark.parametrize("escape", ["\\t", "\\n", "\\r", "\\b", "\\f", "\\u00e5"])
@pytest.mark.parametrize("secret", [OPENAI_KEY, AWS_KEY, GOOGLE_KEY])
def test_a_key_right_after_a_json_escape_in_a_raw_body_is_redacted(
    escape: str, secret: str
) -> None:
    raw = f'data: {{"note": "x{escape}{secret},y"}}\n\n'.encode()
    redacted = Redactor().redact_bytes(raw)
    assert secret.encode() not in redacted
    assert f"x{escape}[REDACTED],y".encode() in redacted


def test_a_key_inside_a_word_is_still_left_alone() -> None:
    text = f"prefix{AWS_KEY}"
    assert Redactor().redact_text(text) is text


def test_a_bearer_token_glued_to_the_next_scheme_does_not_hide_the_next_token() -> None:
    second = "ZKXn+uiLlaPNkwk~OX2T0Q16x-.P44AL0.69MaoTc4-"
    text = f"bearer 3kDrj0sglzV0I3998YeQCAusoK//BEARER {second};rest"
    assert Redactor().redact_text(text) == "bearer [REDACTED] [REDACTED];rest"


def test_a_user_pattern_whose_anchor_another_pattern_consumed_still_redacts() -> None:
    redactor = Redactor(extra_patterns=[r"internal-ref:(?P<secret>[A-Z0-9]{16,24})"])
    text = "BEARER abcdefghijklmnopqinternal-ref:WAVTKFIG5GFLDEK3AKUPNWX;x"
    assert redactor.redact_text(text) == "BEARER [REDACTED]:[REDACTED];x"


def test_overlapping_matches_become_one_placeholder() -> None:
    redactor = Redactor(extra_patterns=[r"proj-a1B2c3D4"])
    assert redactor.redact_text(f"k={OPENAI_KEY}.") == "k=[REDACTED]."


def test_the_generic_payload_keeps_the_route_as_sent_so_a_key_in_it_is_redacted() -> None:
    codec = detect("POST", "127.0.0.1", f"/v1/files/{GOOGLE_KEY}").codec
    payload = Redactor().redact_payload(codec.normalize_request(None))
    assert payload["path"] == "/v1/files/[REDACTED]"
