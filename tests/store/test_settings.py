"""Enablement and retention settings kept in the store."""

from __future__ import annotations

from contextlib import closing

import pytest

from chatdebug.store import Store, open_store


def test_settings_defaults(store: Store) -> None:
    assert store.get_allow_users() is False
    assert store.get_user_enabled("user-1") is False
    assert store.get_retention_days() == 30


def test_allow_users_round_trip(store: Store) -> None:
    store.set_allow_users(True)
    assert store.get_allow_users() is True
    store.set_allow_users(False)
    assert store.get_allow_users() is False


def test_user_opt_in_is_per_user(store: Store) -> None:
    store.set_user_enabled("user-1", True)
    assert store.get_user_enabled("user-1") is True
    assert store.get_user_enabled("user-2") is False
    store.set_user_enabled("user-1", False)
    assert store.get_user_enabled("user-1") is False


@pytest.mark.parametrize("days", [0, 1, 7, 3650])
def test_retention_days_round_trip(store: Store, days: int) -> None:
    store.set_retention_days(days)
    assert store.get_retention_days() == days


@pytest.mark.parametrize("days", [-1, 3651, True])
def test_retention_days_outside_the_range_is_rejected(store: Store, days: int) -> None:
    store.set_retention_days(12)
    with pytest.raises(ValueError, match="retention days"):
        store.set_retention_days(days)
    assert store.get_retention_days() == 12


def test_settings_persist_across_stores(store: Store, database_url: str) -> None:
    store.set_allow_users(True)
    store.set_user_enabled("user-1", True)
    store.set_retention_days(0)
    with closing(open_store(database_url)) as other:
        assert other.get_allow_users() is True
        assert other.get_user_enabled("user-1") is True
        assert other.get_retention_days() == 0
