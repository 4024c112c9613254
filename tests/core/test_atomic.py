"""The one atomic writer: content, suffix kept for format-sniffing writers, permissions, nothing left on failure."""

from __future__ import annotations

import json
import stat

import numpy as np
import pandas as pd
import pytest

from sacmap.core import atomic


def test_text_json_csv_round_trip(tmp_path):
    atomic.atomic_write(tmp_path / "a" / "t.txt", "ü\n")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "ü\n"
    atomic.write_json(tmp_path / "d.json", {"x": np.float64(1.5), "n": float("nan"), 3: np.arange(2)})
    assert json.loads((tmp_path / "d.json").read_text()) == {"x": 1.5, "n": None, "3": [0, 1]}
    atomic.write_csv(tmp_path / "f.csv", pd.DataFrame({"a": [1, 2]}))
    assert (tmp_path / "f.csv").read_text().splitlines() == ["a", "1", "2"]


def test_temporary_file_keeps_the_suffix(tmp_path):
    seen = []
    atomic.atomic_write_with(tmp_path / "img.png", lambda tmp: (seen.append(tmp), tmp.write_bytes(b"x")))
    assert seen[0].suffix == ".png" and seen[0].parent == tmp_path and not seen[0].exists()


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    path = atomic.atomic_write(tmp_path / "r.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == atomic._FILE_MODE
    assert atomic._FILE_MODE & stat.S_IRGRP  # readable by the group under the usual umask 022/002


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic.atomic_write(tmp_path / "keep.txt", "old")

    def boom(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_with(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
