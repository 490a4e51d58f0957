"""Open a report in headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven
by Selenium): check what a person would see, and take a screenshot.

``inspect(path, screenshot=...)`` loads the file, waits for every plot image to decode,
opens the first trajectory and returns what rendered: each plot's natural size, the
visible text of the opened trajectory's steps, and the page title. Nothing here fetches
from the network (the page has nothing to fetch).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from codemill.core.errors import CodemillError


class BrowserError(CodemillError):
    """Chromium or its driver is missing or failed."""


@dataclass(frozen=True)
class Rendered:
    title: str
    plots: tuple[tuple[str, int, int], ...]
    """``(alt, natural width, natural height)`` of every plot image."""
    steps_visible: int
    """Steps of the first trajectory displayed after opening it."""
    step_text: str
    reward_text: str


def _driver(width: int, height: int):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        raise BrowserError("headless Chromium needs Debian's chromium and chromium-driver "
                           "(make system installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def inspect(path: Path, *, screenshot: Path | None = None, width: int = 1280,
            height: int = 1600) -> Rendered:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _driver(width, height)
    try:
        driver.get(Path(path).absolute().as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return Array.from(document.images).every(i => i.complete)"))
        plots = tuple((img.get_attribute("alt"),
                       int(driver.execute_script("return arguments[0].naturalWidth", img)),
                       int(driver.execute_script("return arguments[0].naturalHeight", img)))
                      for img in driver.find_elements(By.CSS_SELECTOR, "img.plot"))
        steps_visible, step_text, reward_text = 0, "", ""
        trajs = driver.find_elements(By.CSS_SELECTOR, "details.traj")
        if trajs:
            trajs[0].find_element(By.TAG_NAME, "summary").click()
            steps = [s for s in trajs[0].find_elements(By.CSS_SELECTOR, "tr.step")
                     if s.is_displayed()]
            steps_visible = len(steps)
            step_text = steps[0].text if steps else ""
            reward_text = trajs[0].find_element(By.CSS_SELECTOR, "p.reward").text
        if screenshot is not None:
            driver.execute_script("window.scrollTo(0, 0)")
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(screenshot))
        return Rendered(driver.title, plots, steps_visible, step_text, reward_text)
    finally:
        driver.quit()
