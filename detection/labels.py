"""Reading atom positions from CSV: expert labels (ImageJ ``Results`` tables, columns ``X``, ``Y``), detection
records (``x_px``, ``y_px``) and simulator truth tables — the input of both scoring and training.

Positions are image pixels, x = column, y = row (origin at the centre of the top-left pixel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.detection.errors import DetectionInputError

#: Coordinate column pairs accepted, in order of preference.
XY_COLUMNS: tuple[tuple[str, str], ...] = (("x_px", "y_px"), ("X", "Y"), ("x", "y"))


def read_labels(path) -> np.ndarray:
    """(n, 2) array of (x = column, y = row) px from an ImageJ Results CSV (``X``, ``Y``) or a detection CSV."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise DetectionInputError(f"{path}: unreadable CSV ({exc})") from exc
    cols = {c.strip(): c for c in df.columns}
    for xc, yc in XY_COLUMNS:
        if xc in cols and yc in cols:
            xy = df[[cols[xc], cols[yc]]].to_numpy(float)
            if not np.all(np.isfinite(xy)):
                raise DetectionInputError(f"{path}: non-finite coordinates in columns {xc}, {yc}")
            return xy.reshape(-1, 2)
    raise DetectionInputError(f"{path}: needs columns x_px, y_px (or ImageJ X, Y); found {list(df.columns)}")
