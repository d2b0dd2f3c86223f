"""The system Chromium, headless, through Selenium: for the viewer's tests and ``ponder bench view``.

Chromium and its driver come from Debian (``apt-get install -y chromium chromium-driver``);
Selenium (a dev dependency) drives them. Nothing is downloaded: Selenium is pointed at
``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (or ``$PONDER_CHROMIUM`` /
``$PONDER_CHROMEDRIVER``), so its driver manager never runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.protocols import PonderError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


class BrowserError(PonderError):
    """No usable Chromium / chromedriver / Selenium here; the message says what to install."""


def _binary(env: str, names: tuple[str, ...]) -> str | None:
    given = os.environ.get(env)
    if given:
        return given if Path(given).is_file() else None
    return next((p for p in map(shutil.which, names) if p), None)


def chromium_paths() -> tuple[str, str]:
    """``(chromium, chromedriver)`` paths.

    Raises:
        BrowserError: either is missing, or Selenium is not installed.
    """
    chromium = _binary("PONDER_CHROMIUM", ("chromium", "chromium-browser"))
    driver = _binary("PONDER_CHROMEDRIVER", ("chromedriver",))
    if chromium is None or driver is None:
        raise BrowserError("no Chromium here (chromium: %s, chromedriver: %s); apt-get install -y chromium "
                           "chromium-driver" % (chromium or "missing", driver or "missing"))
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserError("Selenium is not installed (pip install -e '.[dev]')") from None
    return chromium, driver


def unavailable_reason() -> str | None:
    """Why browser checks cannot run here, or None when they can."""
    try:
        chromium_paths()
    except BrowserError as err:
        return str(err)
    return None


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A headless Chromium (``selenium.webdriver.Chrome``) with a fresh profile, its console
    captured (``driver.get_log("browser")``); quit and the profile removed at the end."""
    binary, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="ponder-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The browser console's SEVERE entries since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
