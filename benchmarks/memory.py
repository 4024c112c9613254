"""Memory and early-refusal benchmark of ``sacmap detect`` (issue 16 item 2).

Prints, measured in this run, each in a fresh subprocess (``resource.getrusage`` peak RSS of that process):

- the peak resident memory of ``sacmap detect`` on one 2048² image at 0.0293 nm/px (the bundled 053 image tiled
  4×4), for the default model, the heat-map model and the paper CNN; target < 2 GB, printed as a ratio to the
  target;
- the peak memory and wall time of a refused image: a 1024² image at 0.3 nm/px (once 390 s and 5.1 GB), which must
  stop with one line before any pixel is resampled — the baseline is the interpreter with sacmap.detection imported.

Run: .venv/bin/python benchmarks/memory.py [--threads 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "inputs/stem/053_HAADF_15nm_Sample_PtNC_21Oct20.tif"
TARGET_BYTES = 2 * 1024**3

_PROBE = """
import resource, sys
from sacmap.workflows.cli import main
if len(sys.argv) > 1:
    rc = main(sys.argv[1:])
else:  # the baseline: what a refused image has to import anyway
    import sacmap.detection.io, sacmap.detection.pipeline  # noqa: E401, F401
    rc = 0
print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _run(args: list[str]) -> tuple[int, int, float]:
    """(exit status, peak RSS in bytes, wall seconds) of ``sacmap ARGS`` in a fresh interpreter."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    rc, rss = res.stdout.strip().splitlines()[-1].split()
    return int(rc), int(rss), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import numpy as np
    import tifffile

    src = tifffile.imread(IMAGE).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "tiled_2048.tif"
        tifffile.imwrite(big, np.tile(src, (4, 4)), imagej=True, resolution=(512 / 15, 512 / 15),
                         metadata={"unit": "nm"})
        coarse = tmp / "coarse_0.3nm.tif"
        tifffile.imwrite(coarse, np.tile(src, (2, 2)), imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                         metadata={"unit": "nm"})
        _, base, base_s = _run([])
        print(f"baseline (python + sacmap.detection imported): {base / 2**20:.0f} MiB, {base_s:.1f} s")
        paper = REPO / "detection/data/detector.pt"
        for label, extra in [("default model", []), ("heat-map model", ["--model", "heatmap"]),
                             ("paper CNN", ["--weights", str(paper)])]:
            if extra and not paper.is_file():
                continue
            rc, rss, wall = _run(["detect", str(big), "-o", str(tmp / "o"), "--threads", str(a.threads),
                                  "--no-overlay", *extra])
            print(f"2048² at 0.0293 nm/px, {label}: exit {rc}, peak RSS {rss / 2**20:.0f} MiB "
                  f"= {rss / TARGET_BYTES:.2f} × the 2 GB target, {wall:.1f} s")
        rc, rss, wall = _run(["detect", str(coarse), "-o", str(tmp / "o2"), "--threads", str(a.threads)])
        print(f"1024² at 0.3 nm/px (refused): exit {rc}, peak RSS {rss / 2**20:.0f} MiB "
              f"({(rss - base) / 2**20:+.0f} MiB over the baseline), {wall:.1f} s ({wall - base_s:+.1f} s)")


if __name__ == "__main__":
    main()
