"""The words of a text search, as both backends match them.

The index is kept by the database itself (migration ``0004_search``): SQLite FTS5 with
the ``unicode61`` tokenizer, PostgreSQL a ``tsvector`` of the ``simple`` configuration
under a GIN index, both fed by triggers on every write of a run or step. Both split
words at anything that is not a letter or a digit (``gpt-4o`` is ``gpt`` and ``4o``)
and ignore case; a search word matches every indexed word it begins (``refund`` finds
``refunded``). A run matches when each word of the search is found in it (its first
message, or a message or reply of any of its steps), not necessarily in one message.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_SEARCH_TERMS", "search_terms"]

MAX_SEARCH_TERMS: Final = 8
"""Words a search may have: each is one indexed lookup."""

_WORD = re.compile(r"[^\W_]+")


def search_terms(text: str) -> list[str]:
    """The distinct words of a search, lowercased, in order; ``ValueError`` when it has
    none or more than :data:`MAX_SEARCH_TERMS`."""
    terms = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    if not terms:
        raise ValueError("a search needs at least one word (letters or digits)")
    if len(terms) > MAX_SEARCH_TERMS:
        raise ValueError(f"a search may have at most {MAX_SEARCH_TERMS} words")
    return terms
