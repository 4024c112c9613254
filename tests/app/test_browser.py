"""The web app in a real browser: Playwright driving Debian's Chromium (headless) against ``sacmap app``.

The test starts ``sacmap app`` on 127.0.0.1 at a free port, uploads a bundled STEM image from ``inputs/stem/``,
waits for the result, checks that the coordinate table has as many rows as ``sacmap.detection.pipeline.detect_image`` finds
for the same image, downloads the ZIP and checks its contents, saves screenshots, then uploads bad files and
checks that the errors show and a good image is still processed afterwards.

Chromium: ``$SACMAP_CHROMIUM`` or ``/usr/bin/chromium`` (``apt-get install chromium``; never
``playwright install``). Skipped only when no Chromium is found. Set ``SACMAP_UPDATE_DOCS_IMG=1`` to also write
the documentation screenshot ``docs/img/app.png``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 90_000


def _chromium() -> str | None:
    path = os.environ.get("SACMAP_CHROMIUM") or "/usr/bin/chromium"
    return path if path and Path(path).is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_image() -> Path:
    """The first bundled STEM image in ``inputs/stem/`` (``$SACMAP_INPUTS/stem``; a real calibrated Pt1/NC image)."""
    from sacmap.core.resources import inputs_dir

    images = sorted((inputs_dir() / "stem").glob("*.tif"))
    assert images, "no bundled STEM image in inputs/stem/"
    return images[0]


@pytest.fixture(scope="module")
def chromium_path():
    path = _chromium()
    if path is None:
        pytest.skip("Chromium not found (set SACMAP_CHROMIUM or apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, chromium_path):
    work = tmp_path_factory.mktemp("app-work")
    port = _free_port()
    log = open(work / "server.log", "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sacmap.workflows.cli", "app", "--host", "127.0.0.1", "--port", str(port),
         "--workdir", str(work / "jobs")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() - t0 > 60:
            proc.kill()
            log.close()
            pytest.fail("sacmap app did not start:\n" + (work / "server.log").read_text())
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser_page(chromium_path, app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url + "/")
        yield page
        context.close()
        browser.close()


def _run(page, files: list[Path]) -> None:
    """Choose files, press the button, wait until the batch is finished."""
    previous = page.evaluate("document.body.dataset.jobId || ''")
    page.locator("#files").set_input_files([str(f) for f in files])
    page.locator("#run").click()
    page.wait_for_function("(prev) => document.body.dataset.jobId && document.body.dataset.jobId !== prev && "
                           "document.body.dataset.jobState === 'finished'", arg=previous)


def test_upload_detect_download(browser_page, tmp_path):
    from sacmap.detection.pipeline import detect_image

    page = browser_page
    image = bundled_image()
    expected = len(detect_image(image).atoms)  # the same function the app calls
    assert expected > 0

    _run(page, [image])
    page.wait_for_selector("#coords-table[data-ready=true]")
    assert page.locator("#problems-panel").is_hidden()
    assert page.locator("#coords-table tbody tr").count() == expected
    assert f"({expected} rows)" in page.locator("#coords-count").inner_text()
    row = page.locator("#summary-table tbody tr").first
    assert row.get_attribute("data-status") == "done"
    # overlay, histogram and envelope figures really loaded
    for sel in ("#overlay-img", "#nnd-img", "#envelope-img"):
        page.wait_for_function(f"document.querySelector('{sel}').complete && "
                               f"document.querySelector('{sel}').naturalWidth > 100")
    descriptors = page.locator("#descriptors-table").inner_text()
    assert "Density" in descriptors and "NND" in descriptors and "Multimer share" in descriptors
    envelope_rows = page.locator("#envelope-table tbody tr")  # G and L against CSR, p-values stated
    assert envelope_rows.count() == 2 and "199" in envelope_rows.first.inner_text()
    caption = page.locator("#envelope-caption").inner_text()
    assert "global rank envelope" in caption and "support mask" in caption

    with page.expect_download() as dl:
        page.locator("#download-zip").click()
    zpath = tmp_path / "results.zip"
    dl.value.save_as(zpath)
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
        stem = image.stem
        assert {f"results/{stem}.csv", f"results/{stem}_overlay.png", f"results/{stem}_nnd.png",
                f"results/{stem}.json", f"results/{stem}_descriptors.json", f"results/{stem}_envelopes.png",
                f"results/{stem}_envelopes.json", "settings.json",
                "summary.csv"} <= names
        rows = list(csv.DictReader(io.StringIO(zf.read(f"results/{stem}.csv").decode())))
        assert len(rows) == expected
        assert {"x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element"} <= set(rows[0])

    with page.expect_download() as dl:
        page.locator("#download-csv").click()
    csv_path = tmp_path / "coords.csv"
    dl.value.save_as(csv_path)
    assert len(list(csv.DictReader(open(csv_path)))) == expected

    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("SACMAP_UPDATE_DOCS_IMG"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "img" / "app.png")


def test_bad_files_show_errors_and_app_stays_usable(browser_page, tmp_path):
    import tifffile

    page = browser_page
    not_image = tmp_path / "notes_not_an_image.tif"
    not_image.write_text("this is a text file, not a TIFF\n")
    nan_image = tmp_path / "with_nan.tif"
    arr = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    arr[10, 10] = np.nan
    tifffile.imwrite(nan_image, arr, resolution=(1 / 0.0293, 1 / 0.0293), imagej=True, metadata={"unit": "nm"})
    flat_image = tmp_path / "constant.tif"
    tifffile.imwrite(flat_image, np.full((64, 64), 7, np.uint16), resolution=(1 / 0.0293, 1 / 0.0293),
                     imagej=True, metadata={"unit": "nm"})

    # settings out of range: refused with a message, nothing queued
    page.locator("#threshold").fill("1.5")
    page.locator("#files").set_input_files([str(not_image)])
    page.locator("#run").click()
    page.wait_for_selector("#request-error:not(.hidden)")
    assert "threshold" in page.locator("#request-error").inner_text()
    page.locator("#threshold").fill("0.8")

    _run(page, [not_image, nan_image, flat_image])
    assert page.locator("#request-error").is_hidden()
    problems = page.locator("#problems .message.error")
    assert problems.count() == 3
    text = page.locator("#problems").inner_text()
    assert "notes_not_an_image.tif" in text and "with_nan.tif" in text and "NaN" in text
    assert "constant.tif" in text and "constant" in text.replace("constant.tif", "")
    assert page.locator("#detail").is_hidden()
    page.screenshot(path=str(tmp_path / "app-errors.png"), full_page=True)

    # still usable: a batch of a bad file, a good image and an uncalibrated PNG (256x256 crops of the bundled
    # image, to keep the test short)
    from PIL import Image

    raw = tifffile.imread(bundled_image())[:256, :256].astype(np.float32)
    image = tmp_path / "crop.tif"
    tifffile.imwrite(image, raw, resolution=(1 / 0.0293, 1 / 0.0293), imagej=True, metadata={"unit": "nm"})
    png = tmp_path / "uncalibrated.png"
    raw = raw.astype(float)
    Image.fromarray((255 * (raw - raw.min()) / (raw.max() - raw.min())).astype(np.uint8)).save(png)
    _run(page, [not_image, image, png])
    rows = page.locator("#summary-table tbody tr")
    assert [rows.nth(i).get_attribute("data-status") for i in range(3)] == ["error", "done", "needs_pixel_size"]
    assert page.locator("#problems .message.error").count() == 1
    page.wait_for_selector("#coords-table[data-ready=true]")
    assert page.locator("#coords-table tbody tr").count() > 0
    # the PNG's pixel size is asked for in the page; giving it processes that image alone
    fix = page.locator("#problems .message.warn")
    assert "no pixel size" in fix.inner_text()
    fix.locator("input").fill("0.0293")
    fix.locator("button").click()
    page.wait_for_function("document.querySelector('#summary-table tbody tr:nth-child(3)')"
                           ".getAttribute('data-status') === 'done'")
    page.wait_for_selector("#coords-table[data-ready=true][data-index='2']")
    assert page.locator("#coords-table tbody tr").count() > 0
    assert "0.0293" in page.locator("#descriptors-table").inner_text()
    assert page.locator("#problems .message.warn").count() == 0
