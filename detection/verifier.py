"""``CandidateVerifier``: is a band-pass candidate (:mod:`sacmap.detection.candidates`) an atom the networks missed?

An ensemble of small multilayer perceptrons (scikit-learn style: parameters in ``__init__``,
``fit``/``predict_proba``) on the features of :data:`sacmap.detection.candidates.FEATURES`, standardised; the
probability is the members' mean. One network alone moved the accepted atoms of some dense images by up to a third
between two trainings on nearly the same candidates (multimer-rich 6 atoms/nm²: 3.38 vs 2.55 detected per nm²);
the mean of ``n_members`` networks, each from its own random start, is steadier. It is fitted with scikit-learn's
``MLPClassifier`` and stored as plain JSON arrays (``data/verifier.json``: feature names, the scaler, the layer
weights, the operating threshold and the training record), evaluated in numpy: no pickle, nothing executable in
the file, size and shapes checked before use. :mod:`sacmap.detection.verifier_training` makes the bundled file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sacmap.core.atomic import atomic_write
from sacmap.detection.candidates import FEATURES
from sacmap.detection.errors import DetectionInputError

#: Largest verifier file read (bytes).
MAX_FILE_BYTES = 2_000_000
KIND = "candidate-verifier"


class CandidateVerifier:
    """Probability that a candidate is an atom.

    Parameters
    ----------
    hidden : sizes of the hidden layers (ReLU).
    alpha : L2 penalty of ``MLPClassifier``.
    max_iter, seed : ``MLPClassifier``'s iteration cap and the first member's random state (then seed + 1, ...).
    n_members : networks averaged.
    threshold : operating probability (candidates at or above it become atoms).
    """

    def __init__(self, hidden: tuple[int, ...] = (32, 16), alpha: float = 1e-3, max_iter: int = 300,
                 seed: int = 0, threshold: float = 0.8, n_members: int = 5):
        self.n_members = int(n_members)
        self.hidden = tuple(int(h) for h in hidden)
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed
        self.threshold = threshold
        self.meta: dict = {}

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight=None) -> CandidateVerifier:
        """Fit on features ``X`` (m, len(FEATURES)) and labels ``y`` (1 = an atom)."""
        from sklearn.neural_network import MLPClassifier

        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != len(FEATURES):
            raise ValueError(f"X: expected (m, {len(FEATURES)}) features, got {X.shape}")
        if sample_weight is not None:  # MLPClassifier takes no weights: repeat rows by integer weight
            rep = np.asarray(sample_weight, int)
            X, y = np.repeat(X, rep, axis=0), np.repeat(np.asarray(y), rep)
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        Z, y = (X - self.mean_) / self.scale_, np.asarray(y).astype(int)
        self.members_ = []
        for k in range(self.n_members):
            mlp = MLPClassifier(self.hidden, alpha=self.alpha, max_iter=self.max_iter, random_state=self.seed + k)
            mlp.fit(Z, y)
            self.members_.append(([np.asarray(w, np.float64) for w in mlp.coefs_],
                                  [np.asarray(b, np.float64) for b in mlp.intercepts_]))
        return self

    def member_proba(self, X: np.ndarray) -> np.ndarray:
        """Each member's probability that each candidate is an atom: (n_members, m). Their spread says how far
        the decision rests on the members' random starts (docs/detection.md, *The verifier's retrain spread*)."""
        Z = (np.asarray(X, np.float64).reshape(-1, len(FEATURES)) - self.mean_) / self.scale_
        out = np.zeros((len(self.members_), len(Z)))
        for k, (weights, biases) in enumerate(self.members_):
            a = Z
            for i, (w, b) in enumerate(zip(weights, biases)):
                a = a @ w + b
                if i < len(weights) - 1:
                    a = np.maximum(a, 0.0)
            out[k] = 1.0 / (1.0 + np.exp(-np.clip(a[:, 0], -50, 50)))
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability (m,) that each candidate is an atom: the members' mean."""
        return self.member_proba(X).mean(axis=0)

    def predict(self, X: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """True where the probability reaches ``threshold`` (None: the verifier's own)."""
        return self.predict_proba(X) >= (self.threshold if threshold is None else threshold)

    # -- file ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": KIND, "features": list(FEATURES), "hidden": list(self.hidden), "threshold": self.threshold,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "members": [{"weights": [w.tolist() for w in ws], "biases": [b.tolist() for b in bs]}
                            for ws, bs in self.members_], "meta": self.meta}

    def save(self, path) -> Path:
        """Write the verifier as JSON, atomically."""
        return atomic_write(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> CandidateVerifier:
        """Read a verifier file (:meth:`save`); DetectionInputError naming the file when it is not one."""
        path = Path(path)
        if not path.is_file():
            raise DetectionInputError(f"{path}: verifier file not found")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DetectionInputError(f"{path}: {path.stat().st_size} bytes, larger than a verifier file "
                                      f"({MAX_FILE_BYTES})")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("kind") != KIND:
                raise ValueError(f"kind {d.get('kind')!r}, expected {KIND!r}")
            if list(d["features"]) != list(FEATURES):
                raise ValueError("its features are not this version's")
            members = [([np.asarray(w, float) for w in m["weights"]], [np.asarray(b, float) for b in m["biases"]])
                       for m in d["members"]]
            v = cls(hidden=tuple(d["hidden"]), threshold=float(d["threshold"]), n_members=len(members))
            v.mean_, v.scale_ = np.asarray(d["mean"], float), np.asarray(d["scale"], float)
            v.members_ = members
            v.meta = dict(d.get("meta") or {})
            if not members:
                raise ValueError("no networks")
            for weights, biases in members:
                n_in = len(FEATURES)
                if len(weights) != len(biases):
                    raise ValueError("layer shapes do not chain")
                for w, b in zip(weights, biases):
                    if w.ndim != 2 or w.shape[0] != n_in or b.shape != (w.shape[1],):
                        raise ValueError("layer shapes do not chain")
                    n_in = w.shape[1]
                if n_in != 1:
                    raise ValueError("output shape wrong")
            if v.mean_.shape != (len(FEATURES),) or v.scale_.shape != (len(FEATURES),):
                raise ValueError("scaler shape wrong")
            if not 0 < v.threshold < 1:
                raise ValueError(f"threshold {v.threshold} outside (0, 1)")
            arrays = [v.mean_, v.scale_, *(a for ws, bs in members for a in (*ws, *bs))]
            if not all(np.all(np.isfinite(a)) for a in arrays):
                raise ValueError("non-finite numbers")
        except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DetectionInputError(f"{path}: not a valid verifier file ({exc})") from exc
        return v
