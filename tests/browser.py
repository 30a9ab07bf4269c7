"""A real headless Chromium for the report tests (Debian's chromium and chromium-driver: no
driver download), and a command that screenshots any report:

    python tests/browser.py runs/quickstart/report.html test-artifacts/report-quickstart.png
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--window-size=1280,1024")
ARTIFACTS = Path(os.environ.get("EVALGRID_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts")


def install_chromium() -> str:
    """Install Chromium with apt-get where it is missing; "" when it is there, else why it cannot be
    (not root on Debian). Raises when the install itself fails."""
    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return ""
    if os.geteuid() != 0 or not Path("/etc/debian_version").is_file() or shutil.which("apt-get") is None:
        return "no Chromium: installing Debian's chromium and chromium-driver needs root on Debian"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver",
               "fonts-liberation"]  # the recommends bring daemons (avahi, cups) a test has no use for
    started = time.monotonic()
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:  # stale package lists: refresh them once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get install chromium chromium-driver failed:\n{done.stdout[-3000:]}{done.stderr}")
    print(f"installed chromium and chromium-driver in {time.monotonic() - started:.0f} s")
    return ""


@contextmanager
def browser() -> Iterator:
    """A headless Chromium (selenium's driver) that keeps the page's console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@dataclass(frozen=True)
class Shot:
    title: str
    images: list  # [alt, complete, natural width] of each <img>
    errors: list[dict]  # the console's SEVERE entries


def screenshot(page: Path, png: Path) -> Shot:
    """Open ``page``, write a full-page screenshot to ``png`` and say what the browser saw."""
    with browser() as driver:
        driver.get(page.resolve().as_uri())
        title = driver.title
        images = driver.execute_script("return Array.from(document.images, i => [i.alt, i.complete, i.naturalWidth])")
        errors = console_errors(driver)
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(shot["data"]))
    return Shot(title, images, errors)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/browser.py REPORT.html OUT.png")
    problem = install_chromium()
    if problem:
        sys.exit(problem)
    seen = screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {seen.title!r}, {len(seen.images)} images, {len(seen.errors)} console errors")
    for error in seen.errors:
        print(f"  {error['message']}")
