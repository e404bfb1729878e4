"""A real browser for the dashboard tests: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver. Its calls block, and the server under test answers on the
test's event loop, so every call runs on a thread (`await browser.do(...)`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = (
    None
    if CHROMIUM and CHROMEDRIVER
    else "needs Debian's chromium and chromium-driver (.ci/run installs them with apt-get)"
)
ARTIFACTS = Path(os.environ.get("TASKRUN_ARTIFACTS", "artifacts")) / "dashboard"

T = TypeVar("T")


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._profile = tempfile.mkdtemp(prefix="taskrun-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM or ""
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000",
            f"--user-data-dir={self._profile}",
        ):  # fmt: skip
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    async def do(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def open(self, path: str) -> None:
        await self.do(self.driver.get, self.base_url + path)

    async def find(self, css: str) -> WebElement:
        return await self.do(self.driver.find_element, By.CSS_SELECTOR, css)

    async def find_all(self, css: str) -> list[WebElement]:
        return await self.do(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def text(self, css: str) -> str:
        element = await self.find(css)
        return str(await self.do(lambda: element.text))

    async def click(self, css: str) -> None:
        element = await self.find(css)
        await self.do(element.click)

    async def script(self, source: str) -> Any:
        return await self.do(self.driver.execute_script, source)

    async def until(self, check: Callable[[], Any], within: float = 10.0) -> Any:
        """Poll `check` (run on the browser's thread) until it returns something true."""
        deadline = time.monotonic() + within
        while True:
            try:
                found = await self.do(check)
            except Exception:  # the page is between two states
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never got there ({self.driver.current_url})")
            await asyncio.sleep(0.1)

    async def console_errors(self) -> list[str]:
        entries = await self.do(self.driver.get_log, "browser")
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.do(self.driver.save_screenshot, str(path))
        return path

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)
