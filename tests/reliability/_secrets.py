"""Generated traffic for the redaction fuzzer: secrets of every kind chatdebug promises
to redact, embedded in text, headers, URLs and JSON at random depths.

Hypothesis draws the shape of each exchange (endpoint, reply format, how the body is
cut and compressed) and a seeded :class:`random.Random` that :class:`Forger` turns into
the bulk content: drawing every character through Hypothesis would cost ten times more,
and a shrunk secret ("AAAA…") could match unrelated stored bytes by chance. ``found``
collects, for each secret put into the traffic, the part that must never be stored
(the random part: a fixed prefix such as ``sk-ant-api03-`` is no secret)."""

from __future__ import annotations

import base64
import json
import random
import string
from typing import Any

KEY_CHARS = string.ascii_letters + string.digits + "_-"
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
B64 = string.ascii_letters + string.digits + "+/"
TOKEN_CHARS = string.ascii_letters + string.digits + "._~+/-"

USER_PATTERNS = [r"acct-\d{8}", r"internal-ref:(?P<secret>[A-Z0-9]{16,24})"]
"""Passed as ``configure(redact_patterns=...)``."""
USER_KEYS = ["customer_ssn"]
USER_HEADERS = ["x-tenant-key"]

SENSITIVE_HEADERS = [
    "Authorization", "x-api-key", "api-key", "Cookie", "Proxy-Authorization",
    "x-goog-api-key", "X-Tenant-Key", "x-session-token", "x-client-secret",
]  # fmt: skip
SENSITIVE_PARAMS = ["key", "api_key", "token", "access_token", "sig", "customer_ssn", "apikey"]
SENSITIVE_KEYS = [
    "api_key", "password", "client_secret", "customer_ssn", "access_token", "Authorization",
    "refresh_token", "private_key", "db_credentials",
]  # fmt: skip
PLAIN_KEYS = ["content", "text", "data", "meta", "args", "note", "value", "items", "x"]
# What may stand before and after a secret in text: anything that does not make it part
# of a longer word (the value patterns' documented boundaries).
SEPARATORS = [" ", "\n", "\t", '"', "'", "=", ":", ",", "(", ")", "/", "<", ">", "[", "]", ";"]
HEADER_SEPARATORS = [s for s in SEPARATORS if s not in "\n\t"]
FILLER = (
    string.ascii_letters + string.digits + string.punctuation + " "
    + "éüßçñøå" + "日本語中文" + "😀🚀" + "\u200b\u00a0"
)  # fmt: skip
HEADER_FILLER = string.ascii_letters + string.digits + string.punctuation + " "

ALL_KINDS = ("openai", "anthropic", "google", "aws", "jwt", "bearer", "pem", "acct", "ref")
SINGLE_LINE_KINDS = tuple(k for k in ALL_KINDS if k != "pem")
WORD_KINDS = ("openai", "anthropic", "google", "aws", "jwt", "acct")
"""Kinds that are one URL-safe word (fit in a URL path segment)."""


class Forger:
    """Builds secret-laden values from one seeded PRNG, recording secrets in ``found``."""

    def __init__(self, rnd: random.Random, found: list[str]) -> None:
        self.rnd = rnd
        self.found = found

    def chars(self, alphabet: str, size: int) -> str:
        return "".join(self.rnd.choices(alphabet, k=size))

    def _with_digit(self, alphabet: str, size: int) -> str:
        body = list(self.chars(alphabet, size))
        body[self.rnd.randrange(size)] = self.rnd.choice(string.digits)
        return "".join(body)

    def pattern_secret(self, kinds: tuple[str, ...] = ALL_KINDS) -> str:
        """A secret a value pattern must catch wherever it appears, as it appears in text."""
        kind = self.rnd.choice(kinds)
        rnd = self.rnd
        if kind == "openai":
            prefix = rnd.choice(["sk-", "sk-proj-", "sk-svcacct-", "sk-admin-"])
            random_part = self._with_digit(KEY_CHARS, rnd.randint(24, 64))
            secret = prefix + random_part
        elif kind == "anthropic":
            random_part = self.chars(KEY_CHARS, 86)
            secret = "sk-ant-api03-" + random_part + "AA"
        elif kind == "google":
            random_part = self.chars(KEY_CHARS, 35)
            secret = "AIza" + random_part
        elif kind == "aws":
            random_part = self._with_digit(UPPER_DIGITS, 16)
            secret = rnd.choice(["AKIA", "ASIA"]) + random_part
        elif kind == "jwt":
            claims = json.dumps({"sub": self.chars(ALNUM, 10), "iat": rnd.randrange(2**31)})
            payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
            random_part = self.chars(KEY_CHARS, 43)
            secret = f"eyJhbGciOiJIUzI1NiJ9.{payload}.{random_part}"
        elif kind == "bearer":
            token = self._with_digit(TOKEN_CHARS, rnd.randint(24, 48))
            self.found.append(token)
            return rnd.choice(["Bearer ", "bearer ", "BEARER "]) + token
        elif kind == "pem":
            label = rnd.choice(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "])
            lines = [self.chars(B64, 64) for _ in range(rnd.randint(1, 4))]
            self.found.extend(lines)
            return (
                f"-----BEGIN {label}PRIVATE KEY-----\n"
                + "\n".join(lines)
                + f"\n-----END {label}PRIVATE KEY-----"
            )
        elif kind == "acct":
            secret = random_part = "acct-" + self.chars(string.digits, 8)
        else:
            value = self.chars(UPPER_DIGITS, rnd.randint(16, 24))
            self.found.append(value)
            return "internal-ref:" + value
        self.found.append(random_part)
        return secret

    def text(self, *, header_safe: bool = False, secrets: int | None = None) -> str:
        """Ordinary text with zero to three secrets in it, each between separators."""
        rnd = self.rnd
        filler = HEADER_FILLER if header_safe else FILLER
        separators = HEADER_SEPARATORS if header_safe else SEPARATORS
        kinds = SINGLE_LINE_KINDS if header_safe else ALL_KINDS
        parts = [self.chars(filler, rnd.randint(0, 12))]
        for _ in range(rnd.randint(0, 3) if secrets is None else secrets):
            parts += [
                rnd.choice(separators),
                self.pattern_secret(kinds),
                rnd.choice(separators),
                self.chars(filler, rnd.randint(0, 12)),
            ]
        return "".join(parts)

    def named_secret(self) -> str:
        """A value secret by the name it is sent under (random, matching no pattern)."""
        value = self.chars(ALNUM, self.rnd.randint(16, 40))
        self.found.append(value)
        return value

    def json_value(self, depth: int = 0, *, names: bool = True) -> Any:
        """A JSON value nested up to ten levels (once in a while far deeper), secrets in
        its strings and (with ``names``) under sensitive keys, sometimes a JSON document
        inside a string.

        Key rules apply to JSON bodies only: an SSE stream or a text body is stored with
        value patterns applied (the reference stores them raw), so what goes there is
        made with ``names=False``."""
        rnd = self.rnd
        if depth >= 10 or rnd.randrange(4) == 0:
            leaf = rnd.randrange(10)
            if leaf < 5:
                return self.text()
            if leaf == 5:  # a JSON document in a string, e.g. tool-call arguments
                inner = self.json_value(depth + 2, names=names)
                # An object or array: the redactor reads a string as JSON when it holds
                # one; a JSON string literal in a string is text, not JSON, to it.
                return json.dumps(inner if isinstance(inner, dict | list) else [inner])
            if leaf == 6 and depth == 0 and rnd.randrange(30) == 0:
                # Deeper than the redactor walks: it must fail closed, not give up.
                value: Any = self.text(secrets=1)
                for _ in range(rnd.randint(250, 300)):
                    value = [value]
                return value
            return rnd.choice([rnd.randint(-(2**40), 2**40), rnd.random() * 1e6, True, None])
        if rnd.randrange(2):
            return [self.json_value(depth + 1, names=names) for _ in range(rnd.randint(0, 3))]
        document: dict[str, Any] = {}
        for _ in range(rnd.randint(0, 4)):
            if names and rnd.randrange(4) == 0:
                # Everything under a sensitive key is its value, whatever it holds.
                key = rnd.choice(SENSITIVE_KEYS)
                secret = self.named_secret()
                document[key] = secret if rnd.randrange(2) else {"nested": secret}
            else:
                document[rnd.choice(PLAIN_KEYS)] = self.json_value(depth + 1, names=names)
        return document
