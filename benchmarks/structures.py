"""Benchmark: time to expand the bundled paper campaign and write every configuration (extxyz + POSCAR +
index.csv). Target: under 60 s on a 2-core machine.

    .venv/bin/python benchmarks/structures.py [SPEC]     # SPEC: a YAML file or a bundled name (default paper)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 60.0


def main(argv: list[str]) -> int:
    spec_arg = argv[0] if argv else "paper"
    t0 = time.perf_counter()
    from sacmap.structures import expand, load_spec, write_configurations
    from sacmap.structures.builders import _carved  # cache of carved sheets: cleared so the timing is cold

    _carved.cache_clear()
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    spec = load_spec(spec_arg)
    atoms = expand(spec)
    t_expand = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        write_configurations(atoms, tmp)
        t_write = time.perf_counter() - t2
        n_files = len(list(Path(tmp).iterdir()))
    total = t_expand + t_write
    print(f"spec: {Path(spec['_source']).name}: {len(atoms)} configurations, {n_files} files")
    print(f"import {t_import:.2f} s | expand {t_expand:.2f} s | write {t_write:.2f} s | total {total:.2f} s")
    print(f"per configuration: {1000 * total / max(len(atoms), 1):.1f} ms")
    print(f"ratio to the {TARGET_S:.0f} s target: {total / TARGET_S:.2f} ({'OK' if total < TARGET_S else 'SLOW'})")
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
