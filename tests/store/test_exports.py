"""The public surface of ``chatdebug.store`` (ruff's RUF022 keeps ``__all__`` sorted)."""

from __future__ import annotations

import chatdebug.store


def test_all_lists_exactly_the_public_names() -> None:
    exported = chatdebug.store.__all__
    assert len(exported) == len(set(exported))
    public = {name for name in vars(chatdebug.store) if not name.startswith("_")}
    assert set(exported) == public
