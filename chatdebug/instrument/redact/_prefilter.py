"""The prefilter of JSON redaction: one cheap pass over a body's lower-cased text that
tells whether the per-node walk of :class:`~chatdebug.instrument.redact._redactor.Redactor` could
change anything at all."""

from __future__ import annotations

from ._patterns import (
    DEFAULT_VALUE_TRIGGERS,
    JSON_KEY_EXACT,
    JSON_KEY_FRAGMENTS,
)

__all__ = ["Prefilter"]


class Prefilter:
    """Finds, in lower-cased JSON text, everything the walk could change: a sensitive key
    (exact, as a whole word, or by fragment), a prefix of a default value pattern, or a
    ``\\u`` escape that could spell either. Plain substring searches: a regex
    alternation with look-arounds costs a hundred times more on a typical body. Only
    valid without extra value patterns, whose matches cannot be predicted."""

    __slots__ = ("_anywhere", "_groups")

    def __init__(self, extra_keys: frozenset[str]) -> None:
        # Every default key name ends in "token" or "key". A key is matched exactly, so in
        # JSON text it is followed by a quote (escaped inside a JSON string): searching
        # for the ending plus quote rules out a whole group, also in LLM bodies full of
        # "max_tokens" and "prompt_tokens".
        groups: dict[str, list[str]] = {}
        for word in sorted(JSON_KEY_EXACT | extra_keys):
            ending = next((e for e in ("token", "key") if word.endswith(e)), word)
            groups.setdefault(ending, []).append(word)
        self._groups = tuple(
            ((ending + '"', ending + '\\"'), tuple(words)) for ending, words in groups.items()
        )
        # "\\u": an escape that could spell a key; "\\\\": JSON nested twice in a string,
        # whose keys the quote test above would not see.
        self._anywhere = (*JSON_KEY_FRAGMENTS, *DEFAULT_VALUE_TRIGGERS, "\\u", "\\\\")

    def search(self, lowered: str) -> bool:
        for fragment in self._anywhere:
            if fragment in lowered:
                return True
        for (quoted, escaped), words in self._groups:
            if (quoted in lowered or escaped in lowered) and any(
                _whole_word(lowered, word) for word in words
            ):
                return True
        return False


def _whole_word(lowered: str, word: str) -> bool:
    """Whether ``word`` occurs in ``lowered`` not inside a longer identifier."""
    start = lowered.find(word)
    while start != -1:
        end = start + len(word)
        if (start == 0 or not _is_word_char(lowered[start - 1])) and (
            end == len(lowered) or not _is_word_char(lowered[end])
        ):
            return True
        start = lowered.find(word, start + 1)
    return False


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"
