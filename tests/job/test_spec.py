"""The job-owned blocks of a campaign spec: typed parsing (file and field in every refusal), the images a
spec names (every suffix `sacmap detect` reads, .bmp included), bundled specs by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sacmap.core.records import IMAGE_SUFFIXES
from sacmap.structures import load_spec
from sacmap.workflows.errors import WorkflowInputError
from sacmap.workflows.job.spec import job_settings, parse_job_spec, resolve_images


def _spec(tmp_path, text: str) -> tuple[dict, Path]:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return load_spec(p), p


def test_defaults_are_the_documented_ones(tmp_path):
    spec, p = _spec(tmp_path, "name: x\n")
    s = job_settings(spec, p)
    assert s["detection"] == {"threshold": None, "pixel_size_nm": None, "elements": None, "weights": None,
                              "device": "cpu"}
    assert s["statistics"] == {"multimer_nm": 0.22, "detector_aware_nsim": 0}
    assert s["sampling"] == {"runs": 40, "seed": 0, "field_nm": 10.0, "densities_nm2": None, "repulsive_c_nm": 0.2,
                             "fit": True, "n_boot": 50, "site_kinds": None}
    assert s["images"] == []


def test_values_are_parsed(tmp_path):
    spec, p = _spec(tmp_path, "name: x\ndetection: {threshold: 0.6, elements: 'Pt, Pd', pixel_size_nm: 0.03}\n"
                              "sampling: {runs: 3, densities_nm2: [0.1, 1]}\n")
    s = job_settings(spec, p)
    assert s["detection"]["elements"] == ["Pt", "Pd"] and s["detection"]["threshold"] == 0.6
    assert s["sampling"]["runs"] == 3 and s["sampling"]["densities_nm2"] == [0.1, 1.0]


@pytest.mark.parametrize("block, field, problem", [
    ("detection: {threshold: 1.0}", "detection.threshold", "below 1"),
    ("detection: {threshold: 0}", "detection.threshold", "not above the minimum 0"),
    ("detection: {pixel_size_nm: -0.1}", "detection.pixel_size_nm", "not above the minimum 0"),
    ("statistics: {multimer_nm: 0}", "statistics.multimer_nm", "minimum"),
    ("statistics: {detector_aware_nsim: 5}", "statistics.detector_aware_nsim", "at least 19"),
    ("sampling: {runs: 2.5}", "sampling.runs", "expected an integer"),
    ("sampling: {runs: 0}", "sampling.runs", "below the minimum 1"),
    ("sampling: {runz: 3}", "sampling.runz", "unknown key"),
    ("sampling: {densities_nm2: []}", "sampling.densities_nm2", "non-empty"),
    ("sampling: {densities_nm2: [0.5, -1]}", "sampling.densities_nm2[1]", "minimum"),
    ("sampling: {fit: maybe}", "sampling.fit", "true or false"),
    ("sampling: [1, 2]", "sampling", "expected a mapping"),
    ("images: {a: 1}", "images", "expected a list"),
])
def test_refusals_name_file_and_field(tmp_path, block, field, problem):
    spec, p = _spec(tmp_path, f"name: x\n{block}\n")
    with pytest.raises(WorkflowInputError) as exc:
        job_settings(spec, p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: {field}:"), msg
    assert problem in msg, msg


def test_bmp_and_every_detect_suffix_is_an_image(tmp_path):
    """`sacmap run` takes the images `sacmap detect` reads: the suffixes are core.records' (.bmp was skipped)."""
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / "a.bmp")
    (d / "b.TIF").write_bytes(b"")
    (d / "notes.txt").write_text("x")
    (d / "c.csv").write_text("x_px,y_px\n")
    assert resolve_images(["imgs"], tmp_path / "spec.yaml") == [d / "a.bmp", d / "b.TIF"]
    assert resolve_images([str(d / "a.bmp")], tmp_path / "spec.yaml") == [d / "a.bmp"]
    assert {".bmp", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".ser"} <= IMAGE_SUFFIXES
    spec, p = _spec(tmp_path, "name: x\nimages: [imgs]\n")
    assert job_settings(spec, p)["images"] == [d / "a.bmp", d / "b.TIF"]
    with pytest.raises(WorkflowInputError, match="neither an image nor a detector CSV"):
        resolve_images(["imgs/notes.txt"], tmp_path / "spec.yaml")


def test_bundled_demo_images_resolve_against_the_spec_file(tmp_path, monkeypatch):
    """`sacmap run demo` from anywhere: the spec is found by name and `images: [../stem]` is relative to it."""
    monkeypatch.chdir(tmp_path)
    spec = load_spec("demo")
    path = Path(spec["_source"])
    assert path.name == "demo.yaml" and path.is_file()
    images = job_settings(spec, path)["images"]
    assert [p.name for p in images] == ["053_HAADF_15nm_Sample_PtNC_21Oct20.tif",
                                        "072_HAADF_15nm_Sample_PtNC_21Oct20.tif"]
    assert all(p.parent == (path.parent / ".." / "stem").resolve() for p in images)
    assert parse_job_spec(spec, path).sampling.runs == 40


def test_run_names_a_missing_spec(tmp_path, capsys, monkeypatch):
    from sacmap.workflows import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "nosuchspec", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nosuchspec" in err and "demo" in err and "paper" in err
