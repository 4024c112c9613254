"""JSON sanitising shared by every writer of JSON in sacmap."""

from __future__ import annotations

import math
import os

import numpy as np


def jsonable(obj):
    """``obj`` with numpy scalars/arrays, paths, tuples and non-string dict keys made JSON-friendly.

    NaN and ±inf become ``None`` (JSON has no such numbers); numpy booleans become ``bool``; anything else is
    returned unchanged.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj
