"""The public surface of ``chatdebug.store``."""

from __future__ import annotations

import chatdebug.store


def test_all_lists_exactly_the_public_names_sorted() -> None:
    exported = chatdebug.store.__all__
    assert exported == sorted(exported)
    public = {name for name in vars(chatdebug.store) if not name.startswith("_")}
    assert set(exported) == public
