"""Headless Debian Chromium for the viewer's browser tests (it must be installed: the
tests fail, never skip, when ``CHATDEBUG_REQUIRE_TOOLS`` is set)."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support import require_tool

__all__ = ["chromium_options", "start_chromium"]


def chromium_options(profile: Path) -> webdriver.ChromeOptions:
    """Options of a quiet headless Chromium with its own profile folder ``profile``."""
    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return options


def start_chromium(options: webdriver.ChromeOptions) -> webdriver.Chrome:
    """A driven Chromium (Debian's chromedriver)."""
    return webdriver.Chrome(
        service=Service(executable_path=require_tool("chromedriver")), options=options
    )
