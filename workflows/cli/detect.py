"""``sacmap detect``: atom detection in HAADF-STEM images, and its evaluate / train / simulate verbs.

    sacmap detect IMAGE_OR_DIR... -o OUTDIR [--pixel-size NM] [--threshold T] [--model bundled|combined|heatmap|paper]
                  [--elements Ni,Pd] [--weights FILE] [--device cpu|cuda]
    sacmap detect evaluate --pred PRED.csv|DIR --truth TRUTH.csv|DIR [--radius-px 5] [-o report.json]
    sacmap detect train --data DIR --split split.csv -o weights.pt [--epochs N] [--seed S] [--threads 2]
    sacmap detect train --model heatmap [--data DIR] -o heatmap.pt [--steps 7000] [--n-sim 400] [--device cuda]
    sacmap detect simulate -o OUTDIR [--n-images N] [--density 1.0] [--dimer-fraction F] [--elements Ni,Pd]

Each option is defined once (:data:`OPTIONS`) and parsed once, by the parser of the verb (the detection run when
the first word is not a verb); numbers are checked as they are parsed (:mod:`sacmap.workflows.cli.options`), so a
bad value is one line naming the option (exit status 2). The handlers call one function of :mod:`sacmap.detection`
and print. A detection run goes on past bad images: every one is named with its reason, ``batch_summary.csv``
lists each file's status and the exit status is 3 when any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sacmap.detection.errors import DetectionInputError
from sacmap.workflows.cli.options import Checked, OneLineParser, input_files, number


def _number(value_type=float, **limits) -> dict:
    return number(value_type, error=DetectionInputError, **limits)


def _detectable(pixel_size_nm: float) -> float:
    """A ``check``: a pixel size (nm/px) the detector supports, refused with the likely unit mistake otherwise
    (:func:`sacmap.detection.io.pixel_size_problem`) before any image is read."""
    from sacmap.detection.io import pixel_size_problem

    problem = pixel_size_problem(pixel_size_nm)
    if problem:
        raise ValueError(f"{pixel_size_nm:.4g} nm/px {problem}")
    return pixel_size_nm


_Checked = Checked  # the shared parse-time checker (sacmap.workflows.cli.options), for the list-valued options below


#: Every option of the detect verbs, defined once: name -> (flags, add_argument keywords); a verb's parser may
#: override the default and help (see :func:`_add`).
OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "outdir": (("-o", "--outdir"), {"required": True, "help": "output folder"}),
    "output": (("-o", "--output"), {"default": None, "help": "output file"}),
    "pixel_size": (("--pixel-size",), {**_number(lo=0, lo_open=True), "default": None, "metavar": "NM",
                                       "help": "pixel size in nm/px (overrides the file)"}),
    "threshold": (("--threshold",), {**_number(lo=0, lo_open=True, hi=1.0, hi_open=True), "default": None,
                                     "help": "operating threshold, strictly between 0 and 1 (default: the one "
                                     "stored with the weights)"}),
    "model": (("--model",), {"default": "bundled", "choices": ["bundled", "combined", "heatmap", "paper"],
                             "help": "bundled (the default detector, see the model card), combined (the heat-map "
                             "peaks plus the paper CNN's atoms 0.15 nm from all of them; the default), heatmap "
                             "(heat-map network) or paper (the paper's crop CNN, the reference)"}),
    "elements": (("--elements",), {"action": _Checked, "value_type": list[str], "split": ",", "default": None,
                                   "help": "comma-separated element symbols in increasing Z, e.g. Ni,Pd"}),
    "weights": (("--weights",), {"default": None, "help": "weights file (default: bundled model)"}),
    "device": (("--device",), {"default": "cpu", "choices": ["cpu", "cuda"]}),
    "split_area": (("--split-area",), {**_number(lo=0), "default": 200.0, "metavar": "PX2",
                                       "help": "components larger than this (px² at 0.0293 nm/px) are tested for "
                                       "multimers (default 200; ~100 splits more 0.22-nm dimers at some cost in "
                                       "precision)"}),
    "split_pairs": (("--split-pairs",), {"action": "store_true",
                                         "help": "test every refined atom for a merged close pair (one Gaussian "
                                         "or two, BIC on the texture-corrected chi2; sacmap.detection.split): "
                                         "recovers 0.20-0.26-nm pairs of broad atoms on clean, bright images, "
                                         "splits nothing under support texture; off by default (+0.05 s per "
                                         "512², +1.7 s per 2048²)"}),
    "wide_ratio": (("--wide-ratio",), {**_number(lo=0), "default": 1.8, "metavar": "R",
                                       "help": "drop refined atoms with no other detection within 2R x the image's "
                                       "atom width whose free-width fit is >= R x that width and no brighter than "
                                       "1.2x the median peak, or >= 1.4x that width and below 0.5x the median peak "
                                       "(texture bumps taken for small faint atoms on fine pixels; measured in "
                                       "docs/detection.md; default 1.8, 0 = off)"}),
    "faint_ratio": (("--faint-ratio",), {**_number(lo=0), "default": 0.35, "metavar": "F",
                                         "help": "combined model: drop the paper CNN's and the verifier's atoms "
                                         "whose refined intensity is below F x the median of the heat-map atoms' "
                                         "(texture bumps the CNN takes for small or faint atoms; measured in "
                                         "docs/detection.md; default 0.35, 0 = off)"}),
    "crowded_density": (("--crowded-density",), {**_number(lo=0), "default": 1.4, "metavar": "D",
                                                 "help": "combined model: where the networks find at least D "
                                                 "atoms/nm2 on an image not finer than 0.0264 nm/px, and its "
                                                 "atoms are at least 0.22 nm wide, read it with "
                                                 "the heat map trained with "
                                                 "crowded fields (heatmap_crowded.pt) instead of heatmap.pt "
                                                 "(measured in docs/detection.md; default 1.4, 0 = off)"}),
    "enlarged_cnn_factor": (("--enlarged-cnn-factor",), {**_number(lo=0), "default": 1.0, "metavar": "Z",
                                                         "help": "combined model: where the paper CNN reads the "
                                                         "image enlarged by more than Z (1: any pixel coarser "
                                                         "than 0.0299 nm) and the crowded reading is not used, "
                                                         "leave its atoms out (it takes interpolated real noise "
                                                         "for atoms) and keep the heat map's peaks down to its "
                                                         "own threshold (measured in docs/detection.md; default "
                                                         "1, 0 = off)"}),
    "small_atom_sigma": (("--small-atom-sigma",), {**_number(lo=0), "default": 2.0, "metavar": "S",
                                                   "help": "images finer than the model frame (0.0293 nm/px) "
                                                   "whose atoms would be narrower than S model px (sigma) "
                                                   "there and stand out from the pixel noise are read again "
                                                   "at their own pixel size; where most detections are "
                                                   "texture, the significant ones decide (small atoms on fine pixels; "
                                                   "measured in docs/detection.md; default 2, 0 = off)"}),
    "no_verify": (("--no-verify",), {"action": "store_true",
                                     "help": "combined model: leave out the band-pass candidates the verifier "
                                     "adds (sacmap.detection.candidates; the atoms the networks miss in dense, "
                                     "noisy images; docs/detection.md)"}),
    "batch": (("--batch",), {**_number(int, lo=1), "default": 4, "help": "images read, detected and written together (default 4)"}),
    "no_overlay": (("--no-overlay",), {"action": "store_true", "help": "skip the PNG overlays"}),
    "threads": (("--threads",), {**_number(int, lo=1), "default": 2, "help": "torch CPU threads (default 2)"}),
    "seed": (("--seed",), {**_number(int, lo=0), "default": None, "help": "random seed"}),
    "pred": (("--pred",), {"required": True, "help": "prediction CSV (x_px, y_px) or folder of them"}),
    "truth": (("--truth",), {"required": True,
                             "help": "label CSV (x_px, y_px or ImageJ X, Y) or folder of them"}),
    "radius_px": (("--radius-px",), {**_number(lo=0, lo_open=True), "default": 5.0,
                                     "help": "matching radius in px (default 5)"}),
    "data": (("--data",), {"required": True, "help": "folder with images/ and labels/ (or the files directly)"}),
    "split": (("--split",), {"required": True, "help": "CSV with columns image, labels, split"}),
    "which": (("--which",), {"default": "train", "help": "split value to train on (default: train)"}),
    "epochs": (("--epochs",), {**_number(int, lo=1), "default": None, "help": "epochs (default 30)"}),
    "channels": (("--channels",), {"action": _Checked, "value_type": tuple[int, int, int], "split": ",",
                                   "limits": {"lo": 1}, "default": None,
                                   "help": "conv widths, e.g. 16,32,32 (paper: 32,64,128)"}),
    "hidden": (("--hidden",), {**_number(int, lo=1), "default": None, "help": "FC width (paper: 128)"}),
    "mining_rounds": (("--mining-rounds",), {**_number(int, lo=0), "default": None,
                                             "help": "hard-negative mining rounds (default 2)"}),
    "smooth_px": (("--smooth-px",), {**_number(lo=0), "default": 0.0, "help": "Gaussian pre-smoothing sigma (px)"}),
    "holdout": (("--holdout",), {**_number(int, lo=0), "default": 3,
                                 "help": "training images held out to tune the threshold (0: no tuning)"}),
    "extra": (("--extra",), {"action": "append", "default": None, "metavar": "DIR",
                             "help": "extra labelled images (*.tif + <stem>.csv, e.g. from 'detect simulate'); "
                             "repeatable"}),
    "real_weight": (("--real-weight",), {**_number(int, lo=1), "default": None,
                                         "help": "repeat the crops of expert-labelled images N times per epoch "
                                         "against the --extra ones"}),
    "select_on_real": (("--select-on-real",), {"action": "store_true",
                                               "help": "choose the epoch on held-out positions of expert-labelled "
                                               "images only (not --extra)"}),
    "refit_all": (("--refit-all",), {"action": "store_true",
                                     "help": "after tuning, retrain on all images (the tuned threshold then "
                                     "transfers only roughly)"}),
    "n_images": (("--n-images",), {**_number(int, lo=1), "default": 1, "help": "number of images (default 1)"}),
    "size": (("--size",), {**_number(int, lo=21), "default": 512, "help": "image side (px, >= 21)"}),
    "density": (("--density",), {**_number(lo=0), "default": 1.0, "help": "atoms per nm² of support"}),
    "dimer_fraction": (("--dimer-fraction",), {**_number(lo=0, hi=1), "default": None,
                                               "help": "share of atoms placed as 0.22-nm dimers"}),
    "trimer_fraction": (("--trimer-fraction",), {**_number(lo=0, hi=1), "default": None,
                                                 "help": "share of atoms placed as 0.22-nm trimers (dimer + trimer "
                                                 "shares <= 1)"}),
    "min_dist": (("--min-dist",), {**_number(lo=0), "default": None,
                                   "help": "closest spacing (nm) of atoms of different units (default 0.25)"}),
    "atom_fwhm": (("--atom-fwhm",), {**_number(lo=0), "default": None,
                                     "help": "FWHM (nm) of the atom image beyond the probe (default: calibrated, "
                                     "0.26)"}),
    "atom_peak": (("--atom-peak",), {**_number(lo=0, lo_open=True), "default": None,
                                     "help": "Pt atom peak height relative to the carbon support (default: "
                                     "calibrated, 0.36)"}),
    "vacuum_fraction": (("--vacuum-fraction",), {**_number(lo=0, hi=1.0, hi_open=True), "default": 0.0,
                                                 "help": "share of the field that is vacuum, in [0, 1)"}),
    "clean": (("--clean",), {"action": "store_true", "help": "noise-free expectation (no shot or scan-line noise)"}),
    "arrangement": (("--arrangement",), {"default": None, "choices": ["random", "hardcore", "multimer"],
                                         "help": "random = complete spatial randomness; hardcore = atoms >= 0.25 nm "
                                         "apart; multimer = 30 %% dimers + 30 %% trimers, bonds 0.20-0.26 nm "
                                         "(--min-dist, --dimer-fraction, ... override it)"}),
    "bond_nm": (("--bond-nm",), {"action": _Checked, "value_type": list[float], "split": ",",
                                 "limits": {"lo": 0, "lo_open": True}, "default": None, "metavar": "NM[,NM]",
                                 "help": "dimer/trimer bond length in nm, or a range lo,hi drawn per bond "
                                 "(default 0.22)"}),
    "dose": (("--dose",), {**_number(lo=0, lo_open=True), "default": None, "metavar": "COUNTS_NM2",
                           "help": "electron dose, counts per nm² per unit support signal (default: calibrated, "
                           "6.3e4)"}),
    "randomise": (("--randomise",), {"action": "store_true",
                                     "help": "draw each image's density, arrangement, pixel size, atom width, "
                                     "dose, contrast, texture and metals (Ni, Ru, Rh, Pd, Pt) at random; "
                                     "given options override the draw"}),
}


def _heatmap_options() -> dict[str, tuple[tuple[str, ...], dict]]:
    """The heat-map training options (:data:`sacmap.detection.heatmap_training.TRAIN_OPTIONS`, defined there once)
    as :data:`OPTIONS` entries, checked as they are parsed; default None (= the config's default)."""
    from sacmap.detection.heatmap_training import TRAIN_OPTIONS, option_check, option_help

    return {name: ((flag,), {"action": _Checked, "error": DetectionInputError, **option_check(name),
                             "default": None, "help": option_help(name)})
            for name, (flag, *_) in TRAIN_OPTIONS.items()}


def _add(parser, *names: str, options: dict | None = None, **overrides: dict) -> None:
    """Add the options ``names`` of ``options`` (default :data:`OPTIONS`) to ``parser`` (or an argument group);
    ``overrides[name]`` replaces some of its keywords."""
    options = OPTIONS if options is None else options
    for name in names:
        flags, kw = options[name]
        parser.add_argument(*flags, dest=name, **{**kw, **overrides.get(name, {})})


def _run_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="sacmap detect",
        description="Detect atoms in images (TIFF with pixel-size tags, PNG/JPEG/BMP with --pixel-size, "
        "dm3/dm4/emd/ser with rosettasciio) and write <stem>.csv/.json/_overlay.png/_support.png per image "
        "(and batch_summary.csv; exit status 3 when some images failed). "
        "Other verbs: 'sacmap detect evaluate|train|simulate -h'.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    _add(p, "outdir", "pixel_size", "threshold", "model", "elements", "weights", "device", "split_area",
         "split_pairs", "wide_ratio", "faint_ratio", "small_atom_sigma", "crowded_density", "enlarged_cnn_factor",
         "no_verify", "batch",
         "no_overlay",
         "threads", pixel_size={"limits": {"lo": 0, "lo_open": True, "check": _detectable},
                     "help": "pixel size in nm/px (overrides the file), within the detector's 0.010-0.080"})
    return p


def _evaluate_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sacmap detect evaluate",
                                description="Precision/recall/F1 with one-to-one (Hungarian) matching within a radius.")
    _add(p, "pred", "truth", "radius_px", "output", output={"help": "write the full report as JSON"})
    return p


#: Options of ``detect train`` that only one model takes (the rest: --model, --data, --split, -o, --seed,
#: --threads, --device cpu); given with the other model they are refused, not ignored.
PAPER_TRAIN_OPTIONS = ("which", "epochs", "channels", "hidden", "mining_rounds", "smooth_px", "holdout", "extra",
                       "real_weight", "select_on_real", "refit_all")


class _TrainParser(OneLineParser):
    """The ``detect train`` parser: after parsing, an option of the other model than ``--model`` is one error line
    (exit 2), and so is a missing ``--data``/``--split`` for the paper CNN."""

    heatmap_only: tuple[str, ...] = ()

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse's entry point
        a = super().parse_args(args, namespace)
        other = self.heatmap_only if a.model == "paper" else PAPER_TRAIN_OPTIONS
        given = [name for name in other if getattr(a, name) is not None]
        if given:
            flags = [self._flag(name) for name in given]
            self.error(f"{', '.join(flags)}: not an option of --model {a.model} "
                       f"(only of --model {'heatmap' if a.model == 'paper' else 'paper'})")
        if a.model == "paper":
            missing = [self._flag(name) for name in ("data", "split") if getattr(a, name) is None]
            if missing:
                self.error(f"the following arguments are required with --model paper: {', '.join(missing)}")
            if a.device == "cuda":
                self.error("--device cuda: the paper CNN trains on the CPU only (--device cuda is for --model "
                           "heatmap)")
        else:
            from sacmap.detection.heatmap_training import check_device

            check_device(a.device, self.prog)
        return a

    def _flag(self, dest: str) -> str:
        return next(act.option_strings[-1] for act in self._actions if act.dest == dest)


def _train_parser() -> argparse.ArgumentParser:
    p = _TrainParser(prog="sacmap detect train",
                     description="Train a detector: the paper's crop CNN on labelled images (--model paper, the "
                     "default; detector.pt) or the heat-map network on simulated + labelled images (--model "
                     "heatmap; heatmap.pt). Options of one model are refused with the other.")
    heat = {k: v for k, v in _heatmap_options().items() if k not in ("seed", "threads")}
    p.heatmap_only = tuple(heat)
    _add(p, "model", "data", "split", "output", "seed", "threads", "device",
         model={"default": "paper", "choices": ["paper", "heatmap"],
                "help": "paper (the paper's crop CNN, detector.pt; the default) or heatmap (heatmap.pt)"},
         data={"required": False, "default": None,
               "help": "folder with images/ and labels/ (or the files directly); required for paper, heatmap "
               "without it trains on simulated images only"},
         split={"required": False, "default": None,
                "help": "CSV with columns image, labels, split (required for paper; heatmap: DATA/split.csv)"},
         output={"required": True, "help": "weights file to write (.pt)"},
         seed={"default": None, "help": "random seed (default 777)"},
         threads={"default": None, "help": "torch CPU threads (default: paper 2, heatmap 1)"},
         device={"default": "cpu", "help": "cpu (default) or cuda (heatmap only)"})
    # default None: "not given" (the model's own default applies), so that the other model can refuse them
    paper = {name: {"default": None} for name in PAPER_TRAIN_OPTIONS}
    paper["which"]["help"] = "split value to train on (default: train)"
    paper["smooth_px"]["help"] = "Gaussian pre-smoothing sigma (px, default 0)"
    paper["holdout"]["help"] = "training images held out to tune the threshold (0: no tuning; default 3)"
    _add(p.add_argument_group("--model paper only"), *PAPER_TRAIN_OPTIONS, **paper)
    _add(p.add_argument_group("--model heatmap only"), *heat, options=heat)
    return p


def _simulate_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sacmap detect simulate",
                                description="Synthetic HAADF-STEM images with known atom positions.")
    _add(p, "outdir", "n_images", "size", "pixel_size", "density", "dimer_fraction", "trimer_fraction", "min_dist",
         "atom_fwhm", "atom_peak", "elements", "vacuum_fraction", "clean", "seed", "arrangement", "bond_nm", "dose",
         "randomise",
         pixel_size={"default": 0.0293, "help": "nm/px (default 0.0293)"},
         elements={"help": "comma-separated symbols, equal shares at random"},
         seed={"default": 0, "help": "random seed (default 0)"})
    return p


def _detect(a) -> int:
    from sacmap.core.batch import BatchReport
    from sacmap.detection.pipeline import Settings, detect_files, summary_line

    report = BatchReport("sacmap detect")
    summaries = detect_files(a.inputs, a.outdir, pixel_size_nm=a.pixel_size, threshold=a.threshold,
                             elements=a.elements or None, weights=a.weights, model=a.model, device=a.device,
                             settings=Settings(split_area_px=a.split_area, split_pairs=a.split_pairs,
                                               wide_ratio=a.wide_ratio, faint_ratio=a.faint_ratio,
                                               small_atom_sigma=a.small_atom_sigma,
                                               crowded_density=a.crowded_density,
                                               enlarged_cnn_factor=a.enlarged_cnn_factor, verify=not a.no_verify),
                             overlay=not a.no_overlay,
                             batch=a.batch, threads=a.threads, progress=sys.stderr.isatty(), report=report)
    for s in summaries:
        print(summary_line(s))
    report.write(a.outdir)
    print(f"wrote {len(summaries)} result set(s) to {a.outdir}; {report.closing_line()}")
    return report.exit_code


def _evaluate(a) -> int:
    from sacmap.core.atomic import write_json
    from sacmap.core.batch import BatchReport
    from sacmap.detection.evaluate import evaluate_files, report_text

    report = BatchReport("sacmap detect evaluate") if Path(a.pred).is_dir() else None  # folders go on
    rep = evaluate_files(a.pred, a.truth, a.radius_px, report=report)
    print(report_text(rep))
    if a.output:
        write_json(a.output, rep, indent=1)
    return report.exit_code if report is not None else 0


def train_config(a):
    """The training config of parsed ``detect train`` options: a
    :class:`~sacmap.detection.training.TrainConfig` (``--model paper``) or a
    :class:`~sacmap.detection.heatmap_training.HeatmapTrainConfig` (``--model heatmap``); options not given keep
    the config's defaults (the bundled models' recipes, see the model card)."""
    if a.model == "heatmap":
        from sacmap.detection.heatmap_training import TRAIN_OPTIONS, HeatmapTrainConfig

        return HeatmapTrainConfig.from_options("sacmap detect train", **{k: getattr(a, k) for k in TRAIN_OPTIONS})
    from sacmap.detection.training import TrainConfig

    return TrainConfig.from_options(epochs=a.epochs, seed=a.seed, threads=a.threads, channels=a.channels,
                                    hidden=a.hidden, mining_rounds=a.mining_rounds, real_weight=a.real_weight,
                                    select_on_real=a.select_on_real)


def _train(a) -> int:
    import shlex

    from sacmap.detection import heatmap_training as ht

    cfg = train_config(a)
    command = shlex.join(["sacmap", "detect", *a.words])  # the command as given, read back from the weights
    progress = sys.stderr.isatty()
    # the files read (data folder, split, --extra folders) are protected, and an -o among them refused at once
    with ht.protect_training_inputs(a.output, a.data, a.split, *(a.extra or ())):
        if a.model == "heatmap":
            if progress:
                import logging

                logging.basicConfig(level=logging.INFO, format="%(message)s")
            meta = ht.train_heatmap_weights(a.data, a.output, split_csv=a.split, config=cfg, device=a.device,
                                            command=command, progress=progress)
            print(ht.training_report(meta, a.output))
            return 0
        from sacmap.detection.training import train_weights, training_report

        given = {k: getattr(a, k) for k in ("which", "smooth_px", "holdout") if getattr(a, k) is not None}
        meta = train_weights(a.data, a.split, a.output, config=cfg, refit_all=bool(a.refit_all),
                             extra_dirs=a.extra or (), command=command, progress=progress, **given)
    print(training_report(meta, a.output))
    return 0


def _simulate(a) -> int:
    from sacmap.detection.simulate import simulate_dataset

    if (a.dimer_fraction or 0) + (a.trimer_fraction or 0) > 1:
        raise DetectionInputError(f"sacmap detect simulate: --dimer-fraction + --trimer-fraction: "
                                  f"{a.dimer_fraction or 0:g} + {a.trimer_fraction or 0:g} is above 1")
    if a.bond_nm is not None and not (len(a.bond_nm) in (1, 2) and a.bond_nm[0] <= a.bond_nm[-1]):
        raise DetectionInputError(f"sacmap detect simulate: --bond-nm: expected NM or LO,HI with LO <= HI, got "
                                  f"{','.join(map(str, a.bond_nm))}")
    bond = None if a.bond_nm is None else (a.bond_nm[0], a.bond_nm[-1])
    paths = simulate_dataset(a.outdir, a.n_images, seed=a.seed, shape=(a.size, a.size), pixel_size_nm=a.pixel_size,
                             density_nm2=a.density, dimer_fraction=a.dimer_fraction,
                             trimer_fraction=a.trimer_fraction, min_dist_nm=a.min_dist, elements=a.elements or None,
                             vacuum_fraction=a.vacuum_fraction if a.vacuum_fraction or not a.randomise else None,
                             noise=not a.clean, spread_fwhm_nm=a.atom_fwhm, peak_pt=a.atom_peak,
                             arrangement=a.arrangement, dimer_nm=bond, dose_per_nm2=a.dose, randomise=a.randomise,
                             progress=sys.stderr.isatty())
    print(f"wrote {len(paths)} image(s) + truth CSVs to {a.outdir}")
    return 0


#: verb -> (parser, handler); the detection run is the verb ``None`` (first word not a verb).
VERBS = {None: (_run_parser, _detect), "evaluate": (_evaluate_parser, _evaluate),
         "train": (_train_parser, _train), "simulate": (_simulate_parser, _simulate)}


def register(subparsers) -> None:
    # The group takes its words verbatim (prefix '+': no '-x' is an option here) and hands them to one parser, the
    # verb's, so that every option is defined and parsed once whatever its position.
    p = subparsers.add_parser(
        "detect", add_help=False, prefix_chars="+",
        help="detect atoms in HAADF-STEM images (also: detect evaluate | train | simulate)",
        description="Detect metal atoms in HAADF-STEM images. Verbs: evaluate, train, simulate "
        "('sacmap detect VERB -h').",
    )
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(func=_dispatch)


def _dispatch(args) -> int:
    words = list(args.words)
    verb = words.pop(0) if words and words[0] in VERBS else None
    make_parser, handler = VERBS[verb]
    parser = make_parser()
    if verb is None and not words:
        parser.print_help()
        return 2
    parsed = parser.parse_args(words)
    parsed.words = list(args.words)  # the command as given, for the record (`detect train` stores it)
    from sacmap.core.atomic import protect_inputs

    with protect_inputs(input_files(parsed)):  # no output of the verb replaces one of its input files
        return handler(parsed)
