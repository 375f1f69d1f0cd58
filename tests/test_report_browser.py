"""The plan report as a browser shows it: headless Chromium renders report.html, and we check
the screenshot is not blank, the figures are embedded and decode, the recommendation is on the
page, and nothing is wider than the window (no table or figure cut off)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helixsim.plan import plan
from helixsim.report import write_report

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 4000
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}"]

# Appended to a copy of the report only (the report itself has no scripts): after load, measure the
# page and write the numbers into the DOM, where --dump-dom can read them.
PROBE = """<script>
window.addEventListener('load', function () {
  var vw = document.documentElement.clientWidth, r = {viewport: vw,
    page_width: document.documentElement.scrollWidth, tables: [], images: []};
  document.querySelectorAll('table').forEach(function (t) {
    var box = t.parentElement;
    r.tables.push({width: t.scrollWidth, room: box.clientWidth, right: t.getBoundingClientRect().right});
  });
  document.querySelectorAll('img').forEach(function (i) {
    r.images.push({natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
                   right: i.getBoundingClientRect().right, data: i.src.slice(0, 22)});
  });
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def chromium(args, tmp_path, timeout=120):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found: install the Debian package 'chromium' (apt-get install -y chromium) "
                    "to render the plan report in a real browser")
    out = tmp_path_factory.mktemp("report")
    # one system meets the floor, one cannot fit the model: both branches of the report are drawn
    result = plan("deepseek-r1", ["gb200-nvl72", "b200-hgx", "h100-hgx"], 1_000_000, 1024, 50.0,
                  max_batch=256,
                  prices={"gb200-nvl72": 4.5, "b200-hgx": 6.0, "h100-hgx": 2.0})
    write_report(result, out)
    return result, out / "report.html"


def test_screenshot_is_readable(report, tmp_path):
    result, page = report
    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", page.resolve().as_uri()], tmp_path)
    assert shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=np.uint8)
    assert img.shape == (HEIGHT, WIDTH)
    ink = img < 200
    assert ink.mean() > 0.03, "screenshot is almost blank"
    rows = ink.reshape(40, -1).mean(axis=1)  # 40 bands of 100 px: content runs down the page
    assert (rows > 0.01).sum() >= 30, "most of the page height is empty"
    assert len(np.unique(img)) > 50  # anti-aliased text and plots, not a flat fill


def test_dom_has_figures_and_recommendation(report, tmp_path):
    result, page = report
    run = chromium(["--dump-dom", page.resolve().as_uri()], tmp_path)
    dom = run.stdout
    assert dom, run.stderr[-2000:]
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', dom)
    assert len(imgs) == len(result.per_hardware) + 1  # a frontier per system and the breakdown
    assert "http://" not in dom and "https://" not in dom
    win = result.winner
    assert f"Use {win.hardware}" in re.sub(r"<[^>]+>", "", dom)
    text = re.sub(r"<[^>]+>", " ", dom)
    for heading in ("Comparison", "Pareto frontiers", "Runner-ups", "Sensitivity", "Calibration and assumptions"):
        assert heading in text
    assert "h100-hgx" in text and "fits deepseek-r1 in memory" in text


def test_nothing_cut_off(report, tmp_path):
    result, page = report
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    run = chromium(["--virtual-time-budget=10000", "--dump-dom", probed.resolve().as_uri()], tmp_path)
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, "the layout probe did not run: " + run.stderr[-2000:]
    r = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert r["page_width"] <= r["viewport"], "the page scrolls sideways"
    assert r["tables"], "no tables on the page"
    for t in r["tables"]:
        assert t["width"] <= t["room"] + 1 and t["right"] <= r["viewport"] + 1, f"table cut off: {t}"
    assert len(r["images"]) == len(result.per_hardware) + 1
    for i in r["images"]:
        assert i["data"].startswith("data:image/png")
        assert i["natural"] > 300, f"image did not decode: {i}"
        assert i["right"] <= r["viewport"] + 1, f"image cut off: {i}"
