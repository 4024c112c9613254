"""Batches that go on (core.batch), inputs that are never overwritten (core.atomic.protect_inputs), UTF-8 reading."""

from __future__ import annotations

import csv
import io
import os

import pytest

from sacmap.core import atomic
from sacmap.core.batch import BatchReport, error_text
from sacmap.core.errors import EXIT_SOME_FAILED, InputError, OutputCollision
from sacmap.core.yamlfile import read_mapping, read_text


def test_batch_goes_on_and_summarises_every_file(tmp_path):
    err = io.StringIO()
    rep = BatchReport("sacmap test", stream=err)
    done = []
    for name in ("a", "b", "c", "d"):
        with rep.item(name):
            if name == "b":
                raise InputError("b: bad pixel size")
            if name == "c":
                raise PermissionError(13, "Permission denied", "c")
            done.append(name)
    assert done == ["a", "d"]  # the files after the bad ones were processed
    assert rep.exit_code == EXIT_SOME_FAILED and rep.n_ok == 2
    rows = list(csv.DictReader(io.StringIO(rep.write(tmp_path).read_text())))
    assert [(r["file"], r["status"]) for r in rows] == [("a", "ok"), ("b", "failed"), ("c", "failed"), ("d", "ok")]
    assert rows[1]["reason"] == "bad pixel size" and rows[2]["reason"] == "Permission denied"
    assert err.getvalue().splitlines() == ["sacmap test: failed: b: bad pixel size",
                                           "sacmap test: failed: c: Permission denied"]
    assert "2 of 4" in rep.closing_line()


def test_programming_errors_are_not_swallowed():
    rep = BatchReport(stream=io.StringIO())
    with pytest.raises(KeyError):
        with rep.item("x"):
            raise KeyError("bug")


def test_all_good_batch_exits_0_and_a_lone_bad_input_exits_2():
    rep = BatchReport()
    with rep.item("a"):
        pass
    assert rep.exit_code == 0 and rep.failures == []
    rep = BatchReport(stream=io.StringIO())
    with rep.item("a"):
        raise InputError("a: bad")
    assert rep.exit_code == 2  # one input: plain bad input, as for a one-file command


def test_output_folder_problems_are_one_oserror_naming_the_path(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(FileExistsError) as err:
        atomic.output_dir(f)
    assert error_text(err.value) == f"{f}: exists and is not a folder"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions
            pytest.skip("running as root")
        for target in (ro / "sub", ro):
            with pytest.raises(PermissionError) as err:
                atomic.output_dir(target)
            assert error_text(err.value).startswith(f"{ro}: cannot write here")
    finally:
        ro.chmod(0o755)
    assert atomic.output_dir(tmp_path / "new" / "deep").is_dir()


def test_error_text_names_the_path(tmp_path):
    assert error_text(FileExistsError(17, os.strerror(17), "/x/o")) == f"/x/o: {os.strerror(17)}"
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(FileExistsError) as err:
        (f / "sub").parent.mkdir(parents=True, exist_ok=True)  # an -o naming a file
    assert error_text(err.value) == f"{f}: exists and is not a folder"
    assert error_text(OSError(30, "Read-only file system", "/ro/a.csv")) == "/ro/a.csv: Read-only file system"


def test_protected_inputs_are_never_replaced(tmp_path):
    src = tmp_path / "frame.png"
    src.write_bytes(b"original")
    link = tmp_path / "alias.png"
    os.link(src, link)
    with atomic.protect_inputs([src, tmp_path / "missing.png", tmp_path]):
        for target in (src, link):  # the same file under another name
            with pytest.raises(OutputCollision, match="frame.png|alias.png"):
                atomic.atomic_write(target, b"overlay")
        atomic.atomic_write(tmp_path / "frame_overlay.png", b"fine")  # other names are written
    assert src.read_bytes() == b"original"
    atomic.atomic_write(src, b"now allowed")  # protection ends with the block
    assert src.read_bytes() == b"now allowed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.png", "frame.png", "frame_overlay.png"]


def test_non_utf8_text_is_one_input_error(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_bytes("name: d\xe9mo\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"spec.yaml: not UTF-8 text \(byte 0xe9 at offset 7\)"):
        read_text(p)
    with pytest.raises(InputError, match="spec.yaml: not UTF-8"):
        read_mapping(p, "spec", {"name"})
    p.write_text("name: démo\n", encoding="utf-8")
    assert read_mapping(p, "spec", {"name"}) == {"name": "démo"}
