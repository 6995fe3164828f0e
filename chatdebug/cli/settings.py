"""``chatdebug migrate`` and ``chatdebug settings …``: the schema and the enablement and
retention settings kept in the store."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..environment_variables import CHATDEBUG_ENABLED, truthy
from ..store import database_location
from ._core import EXIT_OK, arg, command, open_from_args


def _on_off(value: bool) -> str:
    return "on" if value else "off"


_ON_OFF = {"choices": ["on", "off"], "type": str.lower}


@command("migrate", "create or upgrade the database schema")
def _migrate(args: argparse.Namespace) -> int:
    location = database_location(args.database_url)
    with open_from_args(args, migrate=False) as store:
        applied = store.migrate()
        print(f"backend:  {store.backend}")
        print(f"database: {location}")
        if applied:
            versions = ", ".join(str(v) for v in applied)
            print(f"schema:   applied version{'s' if len(applied) > 1 else ''} {versions}")
        else:
            print("schema:   already up to date")
    return EXIT_OK


@command(
    "settings show",
    "print the settings (and one user's opt-in with --user)",
    arg("--user", metavar="USER_ID", help="also show this user's opt-in"),
    arg("--json", action="store_true", help="print JSON"),
)
def _settings_show(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        values: dict[str, Any] = {
            "allow_users": store.get_allow_users(),
            "retention_days": store.get_retention_days(),
            "forced_by_deployment": truthy(os.environ.get(CHATDEBUG_ENABLED)),
        }
        if args.user is not None:
            values["user"] = {"id": args.user, "enabled": store.get_user_enabled(args.user)}
    if args.json:
        print(json.dumps(values, indent=2))
        return EXIT_OK
    print(f"allow_users:          {_on_off(values['allow_users'])}")
    days = values["retention_days"]
    print(f"retention_days:       {days}{' (purge disabled)' if days == 0 else ''}")
    print(f"forced_by_deployment: {_on_off(values['forced_by_deployment'])} ({CHATDEBUG_ENABLED})")
    if args.user is not None:
        print(f"user {args.user}: {_on_off(values['user']['enabled'])}")
    return EXIT_OK


@command(
    "settings allow-users",
    "let users opt in to recording (the admin switch)",
    arg("value", **_ON_OFF),
)
def _settings_allow_users(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        store.set_allow_users(args.value == "on")
        print(f"allow_users: {_on_off(store.get_allow_users())}")
    return EXIT_OK


@command(
    "settings user",
    "show or set one user's opt-in",
    arg("user_id", metavar="USER_ID"),
    arg("value", nargs="?", **_ON_OFF),
)
def _settings_user(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        if args.value is not None:
            store.set_user_enabled(args.user_id, args.value == "on")
        enabled = store.get_user_enabled(args.user_id)
        print(f"user {args.user_id}: {_on_off(enabled)}")
        if enabled and not store.get_allow_users():
            print("(recording also needs: chatdebug settings allow-users on)")
    return EXIT_OK


@command(
    "settings retention-days",
    "days to keep runs after their last update (0 disables the purge)",
    arg("days", type=int, metavar="N"),
)
def _settings_retention_days(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        store.set_retention_days(args.days)
        print(f"retention_days: {store.get_retention_days()}")
    return EXIT_OK
