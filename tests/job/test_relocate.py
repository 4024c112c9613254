"""Output folders are relocatable: a step record written in one folder resumes in a moved or copied one, with its
paths under the new folder (never reading or writing the old one)."""

from __future__ import annotations

import json
import shutil

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
