"""Output folders are relocatable: a step record written in one folder resumes in a moved or copied one, with its
paths under the new folder (never reading or writing the old one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sacmap.workflows.job.steps import StepRecord


def _done(out):
    (out / "structures").mkdir(parents=True)
    index = out / "structures" / "index.csv"
    index.write_text("id\n")
    rec = StepRecord(out, "structures")
    rec.mark_done("k", [index], {"index": str(index), "db": f"sqlite:///{out}/campaign/results.db",
                                 "images": [{"csv": out / "detection" / "a.csv"}], "spec": "/elsewhere/spec.yaml",
                                 "n": 3})
    return rec


def test_records_store_no_absolute_path_of_the_output_folder(tmp_path):
    out = tmp_path / "A"
    rec = _done(out)
    text = rec.path.read_text()
    assert str(out) not in text
    stored = json.loads(text)
    assert stored["outputs"] == ["structures/index.csv"]
    assert stored["result"]["index"] == "{outdir}/structures/index.csv"
    assert stored["result"]["spec"] == "/elsewhere/spec.yaml"  # inputs outside the folder are kept as given


def test_moved_and_copied_folders_resume_in_their_new_place(tmp_path):
    a = tmp_path / "A"
    _done(a)
    b = tmp_path / "B"
    shutil.copytree(a, b)
    c = tmp_path / "moved" / "C"
    c.parent.mkdir()
    shutil.move(str(a), c)
    for out in (b, c):
        rec = StepRecord(out, "structures")
        assert rec.is_current("k")
        res = rec.result()
        assert res["index"] == str(out / "structures" / "index.csv")
        assert res["db"] == f"sqlite:///{out}/campaign/results.db"
        assert res["images"] == [{"csv": str(out / "detection" / "a.csv")}]
        assert res["n"] == 3 and res["spec"] == "/elsewhere/spec.yaml"


def test_run_goes_on_past_a_bad_image_and_resumes_in_a_moved_folder(tmp_path, capsys):
    """`sacmap run` on images only: a bad image is named, the report is still written, exit status 3; the output
    folder moved elsewhere resumes there (nothing recomputed from, or pointing to, the old place)."""
    import numpy as np
    import tifffile

    from sacmap.workflows.cli import main

    src = tifffile.imread(Path(__file__).resolve().parents[2] / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name, (r, c) in {"a.tif": (0, 0), "b.tif": (256, 256)}.items():
        tifffile.imwrite(imgs / name, src[r:r + 256, c:c + 256].astype(np.float32), imagej=True,
                         resolution=(512 / 15, 512 / 15), metadata={"unit": "nm"})
    (imgs / "c.tif").write_bytes(b"not a tiff")
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\nimages: [imgs]\ndetection: {}\nstatistics: {multimer_nm: 0.22}\n"
                    "sampling: {runs: 2, n_boot: 2, seed: 0, densities_nm2: [1]}\n")
    first = tmp_path / "out"
    assert main(["run", str(spec), "-o", str(first), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert "c.tif" in err and "unreadable TIFF" in err and "Traceback" not in err
    rows = (first / "detection" / "batch_summary.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["ok", "ok", "failed"]
    assert (first / "report.html").is_file()
    moved = tmp_path / "elsewhere" / "out"
    moved.parent.mkdir()
    shutil.move(str(first), moved)
    assert main(["run", str(spec), "-o", str(moved), "--no-progress"]) == 3
    capsys.readouterr()
    stale = [p for p in moved.rglob("*") if p.is_file() and p.suffix in (".json", ".csv", ".html")
             and str(first) in p.read_text(errors="ignore")]
    assert stale == []
