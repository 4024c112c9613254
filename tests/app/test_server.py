"""Server endpoints of the web app: uploads, limits, batching with bad files, re-runs, downloads, ZIP.

These tests replace the per-image science function by a small fake (``fake_process``) so they test the web layer
alone and fast; ``test_pipeline.py`` and ``test_browser.py`` run the real detection and statistics.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import pytest
from fastapi.testclient import TestClient

from sacmap.detection.errors import DetectionInputError
from sacmap.workflows.app import pipeline
from sacmap.workflows.app.jobs import safe_stem, safe_suffix
from sacmap.workflows.app.server import create_app
from sacmap.workflows.errors import WorkflowInputError

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def fake_process(path, stem, out_dir, settings, *, pixel_size_nm=None, name=None, progress=None):
    """Stand-in for pipeline.process_image: the file's text says what happens (n atoms, bad, no pixel size)."""
    text = path.read_bytes().decode("latin-1")
    if progress:
        progress("detecting", 0.5)
    if text.startswith("BAD"):
        raise DetectionInputError(f"{path}: image contains 3 NaN/inf pixels")
    if text.startswith("NOPX") and pixel_size_nm is None and settings.pixel_size_nm is None:
        raise pipeline.PixelSizeMissing(f"{path}: the file records no pixel size; enter one (nm/px) for this image")
    if text.startswith("CRASH"):
        raise RuntimeError("boom")
    n = int(text.split()[-1])
    px = pixel_size_nm or settings.pixel_size_nm or 0.03
    with open(out_dir / f"{stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element"])
        for i in range(n):
            w.writerow([i, 2 * i, i * px, 2 * i * px, 0.9, 12, "Pt"])
    (out_dir / f"{stem}.json").write_text(json.dumps({"image": stem, "n_atoms": n}))
    (out_dir / f"{stem}_descriptors.json").write_text(json.dumps({"n_atoms": n, "density_nm2": n / 100}))
    (out_dir / f"{stem}_overlay.png").write_bytes(PNG_1PX)
    (out_dir / f"{stem}_nnd.png").write_bytes(PNG_1PX)
    (out_dir / f"{stem}_envelopes.png").write_bytes(PNG_1PX)
    (out_dir / f"{stem}_envelopes.json").write_text(json.dumps([{"function": "G", "lo": [0.0], "hi": [1.0]}]))
    return {
        "pixel_size_nm": px, "pixel_size_source": "user" if pixel_size_nm else "file", "shape": [64, 64],
        "n_atoms": n, "support_area_nm2": 100.0,
        "descriptors": {"n_atoms": n, "density_nm2": n / 100, "nuclearity": {"1": n}},
        "element_counts": {"Pt": n}, "detection_settings": {"threshold": settings.threshold},
        "envelopes": [{"function": "G", "p_rank_erl": 0.035}, {"function": "L", "p_rank_erl": 0.5}],
        "files": {"csv": f"{stem}.csv", "json": f"{stem}.json", "descriptors": f"{stem}_descriptors.json",
                  "overlay": f"{stem}_overlay.png", "nnd": f"{stem}_nnd.png",
                  "envelopes": f"{stem}_envelopes.json", "envelopes_png": f"{stem}_envelopes.png"},
    }


@pytest.fixture
def client(tmp_path):
    app = create_app(tmp_path / "work", max_file_mb=0.01, max_files=4, process=fake_process)
    with TestClient(app) as c:
        yield c


def wait(client, job_id, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["finished"]:
            return job
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def upload(client, files, **fields):
    data = {"threshold": "0.8", "multimer_nm": "0.22", **fields}
    return client.post("/api/jobs", files=[("files", f) for f in files], data=data)


def test_page_and_static_assets_are_local(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert 'id="files"' in html and "/static/app.js" in html
    assert "http://" not in html and "https://" not in html  # no CDN: works offline
    for asset in ("/static/app.js", "/static/app.css"):
        a = client.get(asset)
        assert a.status_code == 200 and "https://" not in a.text
    cfg = client.get("/api/config").json()
    assert cfg["max_files"] == 4 and cfg["defaults"]["multimer_nm"] == 0.22 and cfg["defaults"]["threshold"] is None
    assert ".tif" in cfg["accept"]


def test_batch_with_bad_files_processes_the_good_ones(client):
    files = [
        ("a.tif", b"IMG 5", "image/tiff"),
        ("bad.tif", b"BAD", "image/tiff"),
        ("big.tif", b"x" * 20000, "image/tiff"),  # over the 0.01 MB limit of this app
        ("c.png", b"IMG 2", "image/png"),
    ]
    r = upload(client, files)
    assert r.status_code == 200, r.text
    job = wait(client, r.json()["id"])
    status = {it["name"]: it for it in job["items"]}
    assert status["a.tif"]["status"] == "done" and status["c.png"]["status"] == "done"
    assert status["bad.tif"]["status"] == "error" and "NaN" in status["bad.tif"]["message"]
    assert status["bad.tif"]["message"].startswith("bad.tif:")
    assert "in_0" not in status["bad.tif"]["message"]  # the stored path is never shown, the file name is
    assert status["big.tif"]["status"] == "error" and "upload limit" in status["big.tif"]["message"]
    assert job["progress"] == 1.0 and job["n_done"] == 2 and job["n_problems"] == 2
    uploads = client.app.state.manager.get(job["id"]).dir / "uploads"
    assert list(uploads.iterdir()) == []  # processed uploads are not kept
    rows = {row["image"]: row for row in job["summary"]}
    assert rows["a.tif"]["n_atoms"] == 5 and rows["c.png"]["n_atoms"] == 2 and rows["bad.tif"]["n_atoms"] == ""
    # the app stays usable: a new good batch still runs
    job2 = wait(client, upload(client, [("d.tif", b"IMG 3", "image/tiff")]).json()["id"])
    assert job2["items"][0]["status"] == "done" and job2["items"][0]["result"]["n_atoms"] == 3


def test_internal_failure_of_one_image_is_reported_and_batch_continues(client):
    job = wait(client, upload(client, [("x.tif", b"CRASH", "image/tiff"), ("y.tif", b"IMG 1", "image/tiff")])
               .json()["id"])
    assert job["items"][0]["status"] == "error" and "RuntimeError" in job["items"][0]["message"]
    assert job["items"][1]["status"] == "done"


def test_coordinates_csv_json_and_zip(client):
    job = wait(client, upload(client, [("scan 1.tif", b"IMG 4", "image/tiff"), ("b.tif", b"BAD", "image/tiff")],
                              elements="", pixel_size_nm="").json()["id"])
    base = f"/api/jobs/{job['id']}/images/0"
    coords = client.get(base + "/coords.json").json()
    assert coords["columns"] == ["x_px", "y_px", "x_nm", "y_nm", "score", "component_size", "element"]
    assert len(coords["rows"]) == 4
    r = client.get(base + "/coords.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="scan_1.csv"' in r.headers["content-disposition"]
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 4
    assert client.get(base + "/overlay.png").content == PNG_1PX
    assert client.get(base + "/descriptors.json").json()["n_atoms"] == 4
    assert client.get(f"/api/jobs/{job['id']}/images/1/coords.csv").status_code == 404  # the bad one
    assert client.get(base + "/secret.txt").status_code == 404
    z = client.get(f"/api/jobs/{job['id']}/results.zip")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(z.content))
    names = set(zf.namelist())
    assert {"results/scan_1.csv", "results/scan_1.json", "results/scan_1_descriptors.json",
            "results/scan_1_overlay.png", "results/scan_1_nnd.png", "summary.csv", "settings.json",
            "problems.txt", "descriptors.csv"} <= names
    desc_rows = list(csv.DictReader(io.StringIO(zf.read("descriptors.csv").decode())))
    assert len(desc_rows) == 1 and desc_rows[0]["image"] == "scan 1.tif" and desc_rows[0]["nuclearity_1"] == "4"
    s = client.get(f"/api/jobs/{job['id']}/summary.csv")
    assert s.status_code == 200 and s.text == zf.read("summary.csv").decode()
    settings = json.loads(zf.read("settings.json"))
    assert settings["settings"]["threshold"] == 0.8 and settings["settings"]["multimer_nm"] == 0.22
    assert [im["image"] for im in settings["images"]] == ["scan 1.tif", "b.tif"]
    summary = list(csv.DictReader(io.StringIO(zf.read("summary.csv").decode())))
    assert [s["status"] for s in summary] == ["done", "error"] and summary[0]["n_atoms"] == "4"
    assert (summary[0]["envelope_G_p_rank"], summary[0]["envelope_L_p_rank"]) == ("0.035", "0.5")
    assert summary[1]["envelope_G_p_rank"] == ""
    assert "results/scan_1_envelopes.png" in names and "results/scan_1_envelopes.json" in names
    assert client.get(base + "/envelopes.png").content == PNG_1PX
    env = client.get(base + "/envelopes.json")
    assert env.json()[0]["function"] == "G" and 'filename="scan_1_envelopes.json"' in env.headers["content-disposition"]
    assert "b.tif" in zf.read("problems.txt").decode()


def test_missing_pixel_size_can_be_given_afterwards(client):
    job = wait(client, upload(client, [("plain.png", b"NOPX 3", "image/png"), ("b.tif", b"BAD", "image/tiff")])
               .json()["id"])
    it = job["items"][0]
    assert it["status"] == "needs_pixel_size" and "pixel size" in it["message"]
    url = f"/api/jobs/{job['id']}/images/0/pixel-size"
    assert client.post(url, data={"pixel_size_nm": "-1"}).status_code == 400
    assert client.post(url, data={"pixel_size_nm": "abc"}).status_code == 400
    assert client.post(f"/api/jobs/{job['id']}/images/1/pixel-size", data={"pixel_size_nm": "0.05"}).status_code == 409
    assert client.post(url, data={"pixel_size_nm": "0.05"}).status_code == 200
    job = wait(client, job["id"])
    res = job["items"][0]["result"]
    assert job["items"][0]["status"] == "done", job["items"][0]["message"]
    assert res["pixel_size_nm"] == 0.05 and res["pixel_size_source"] == "user"
    zf = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job['id']}/results.zip").content))
    assert "results/plain.csv" in zf.namelist()  # the ZIP is rebuilt after the re-run


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"threshold": "1.5"}, "threshold"),
        ({"threshold": "abc"}, "threshold"),
        ({"multimer_nm": "-0.1"}, "multimer"),
        ({"pixel_size_nm": "0"}, "pixel_size_nm"),
        ({"elements": "Ni,Xx"}, "Xx"),
        ({"override_pixel_size": "1"}, "override"),
    ],
)
def test_bad_settings_are_refused_with_a_message(client, fields, needle):
    r = upload(client, [("a.tif", b"IMG 1", "image/tiff")], **fields)
    assert r.status_code == 400 and needle in r.json()["detail"]


def test_request_level_limits(client):
    assert client.post("/api/jobs", data={"threshold": "0.8"}).status_code == 400  # no files
    r = upload(client, [(f"f{i}.tif", b"IMG 1", "image/tiff") for i in range(5)])
    assert r.status_code == 400 and "too many files" in r.json()["detail"]
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/results.zip").status_code == 404


def test_duplicate_and_hostile_file_names(client):
    files = [("../../etc/passwd.tif", b"IMG 1", "image/tiff"), ("passwd.tif", b"IMG 2", "image/tiff"),
             ("<script>.tif", b"IMG 1", "image/tiff")]
    job = wait(client, upload(client, files).json()["id"])
    stems = [it["stem"] for it in job["items"]]
    assert stems == ["passwd", "passwd_2", "script"]
    assert all(it["status"] == "done" for it in job["items"])


def test_safe_names():
    assert safe_stem("a b/c d.tif") == "c_d"
    assert safe_stem("...") == "image"
    assert safe_suffix("x.TIF") == ".tif" and safe_suffix("x.t;f") == "" and safe_suffix("noext") == ""


def test_settings_from_form():
    s = pipeline.AppSettings.from_form(pixel_size_nm="0,0293", threshold="0.7", elements="ni, pd",
                                       multimer_nm="0.25")
    assert s.pixel_size_nm == pytest.approx(0.0293) and s.elements == ("Ni", "Pd") and s.threshold == 0.7
    assert s.to_dict()["elements"] == ["Ni", "Pd"]
    with pytest.raises(WorkflowInputError, match="repeat"):
        pipeline.AppSettings(elements=("Ni", "Ni"))


def test_oversized_request_is_refused_before_reading(client):
    r = upload(client, [("huge.tif", b"x" * (2 * 2**20), "image/tiff")])  # > 4 files x 0.01 MB + 1 MB slack
    assert r.status_code == 413 and "at most 4 files" in r.json()["detail"]


def test_cli_registers_app_command(capsys):
    from sacmap.workflows import cli

    with pytest.raises(SystemExit):
        cli.main(["app", "--help"])
    out = capsys.readouterr().out
    assert "--port" in out and "127.0.0.1" in out
    assert cli.main(["app", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
