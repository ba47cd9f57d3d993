"""Issue 22 item 12: the membership report's tables fit a 1200 px wide page (the distortion table ran off it)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ATTACKS, MASKS = ("loss", "pia", "secmi", "sima"), ("none", "pullback", "random")


def _summary() -> dict:
    def group(i: int) -> dict:
        g = {"n": 50, "n_members": 25, "log_volume_range": [0.0, 1.0], "per_timestep": {}}
        for a in ATTACKS:
            for m in MASKS:
                g[f"{a}/{m}"] = 0.5 + 0.01 * i
                g["per_timestep"][f"{a}/{m}"] = [0.5, 0.6]
        return g

    proto = {"auroc": 0.61234, "asr": 0.6, "tpr_at_1pct_fpr": 0.02, "tpr_at_0.1pct_fpr": 0.0, "timestep": 100}
    return {"n_members": 100, "n_nonmembers": 100, "timesteps": [10, 100, 200], "calib_fraction": 0.5,
            "attacks": {a: {m: {"paper": dict(proto), "honest": dict(proto)} for m in MASKS} for a in ATTACKS},
            "distortion": {"median": {"low": group(0), "high": group(1)},
                           "quartiles": {f"Q{i}": group(i) for i in range(1, 5)},
                           "log_volume": {"members_mean": 1.0, "nonmembers_mean": 1.1, "auroc_of_log_volume": 0.52}}}


def _page(tmp_path) -> Path:
    from latentguard.privacy import audit

    s = _summary()
    path = tmp_path / "index.html"
    path.write_text(audit._html(s, audit.summary_rows(s), [], "membership audit"))
    return path


def test_no_table_has_more_columns_than_a_page_holds(tmp_path):
    text = _page(tmp_path).read_text()
    for table in re.findall(r"<table>.*?</table>", text, flags=re.S):
        first_row = re.search(r"<tr>(.*?)</tr>", table, flags=re.S).group(1)
        assert first_row.count("<th>") <= 8, first_row
    assert all(m + " mask" in text for m in MASKS) and text.count("<div class='wide'>") == 2


@pytest.mark.slow
def test_the_page_fits_1200_px_in_a_real_browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (latentguard[web])")
    chromium, driver_bin = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver_bin).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_bin))
    try:
        driver.get(_page(tmp_path).as_uri())
        inner, scroll = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        widest = driver.execute_script(
            "return Math.max(...[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right))")
    finally:
        driver.quit()
    assert scroll <= inner and widest <= inner, (inner, scroll, widest)
