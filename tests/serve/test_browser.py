"""The page in a real browser: Debian's headless Chromium driven by Selenium through Debian's chromedriver.

Uploads a bundled sample photo, protects it, waits for the result, downloads the PNG and checks its L-inf
distance to the input against the budget. Saves a screenshot (``LATENTGUARD_SERVE_SCREENSHOT=PATH`` copies it
there, e.g. docs/img/serve.png). No browser is downloaded: ``scripts/setup.sh`` installs ``chromium`` and
``chromium-driver`` with apt.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (latentguard[web])")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,1100")


@pytest.fixture()
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    profile = tempfile.mkdtemp(prefix="lg-chromium-", dir=tmp_path)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _wait(fn, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_protect_in_the_browser(live_url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from latentguard.samples import sample_paths
    from latentguard.io import load_image, save_image

    src = next(p for p in sample_paths() if p.stem == "chelsea")
    photo = tmp_path / "chelsea.png"
    save_image(load_image(src)[..., 64:192, 64:192], photo)  # a 128x128 crop of the photo: fast on a CPU
    d = browser
    d.get(live_url + "/")
    assert "latentguard" in d.title
    d.find_element(By.ID, "files").send_keys(str(photo))
    d.execute_script("const e = document.getElementById('eps'); e.value = 8; e.dispatchEvent(new Event('input'));")
    steps = d.find_element(By.ID, "steps")
    steps.clear()
    steps.send_keys("3")
    assert d.find_element(By.ID, "eps-out").text == "8/255"
    d.find_element(By.ID, "protect").click()
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, ".card.done, .card.failed"), 600, "the job to finish")
    assert not d.find_elements(By.CSS_SELECTOR, ".card.failed"), d.find_element(By.CSS_SELECTOR, ".card .state").text
    for cls in ("protected", "diff"):
        _wait(lambda: d.execute_script(f"const i = document.querySelector('img.{cls}'); return i && i.complete && i.naturalWidth"),
              30, f"the {cls} image")
    assert d.execute_script("return document.querySelector('img.protected').naturalWidth") == 128
    _wait(lambda: d.execute_script("return Array.from(document.querySelectorAll('.preview img')).every(i => i.complete && i.naturalWidth > 0)"),
          30, "the preview images")
    text = d.find_element(By.CSS_SELECTOR, ".card.done").text
    assert "L-inf distance" in text and "zoo:vae-a" in text and "img2img" in text
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1280, min(2400, int(height) + 140))  # the whole page in the screenshot
    shot = tmp_path / "serve.png"
    d.save_screenshot(str(shot))
    if os.environ.get("LATENTGUARD_SERVE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["LATENTGUARD_SERVE_SCREENSHOT"])
    d.find_element(By.CSS_SELECTOR, "a.download").click()
    got = _wait(lambda: [p for p in d.downloads.iterdir() if p.suffix == ".png"], 30, "the download")
    assert got[0].name == "chelsea-protected.png"
    x, y = load_image(photo), load_image(got[0])
    assert y.shape == x.shape
    linf = float((y - x).abs().max())
    assert 0 < linf <= 8 / 255 + 1e-6
    assert d.find_element(By.ID, "zip").get_attribute("href").endswith(d.execute_script(
        "return document.querySelector('.card.done img.protected').src.split('/')[5]"))
