"""``sacmap detect train``: one verb for both bundled models (``--model paper``, the default, and ``--model heatmap``,
the same run as ``python -m sacmap.detection.heatmap_training``); options checked while parsing, options of the
other model refused, the command recorded in the weights, the bundled recipes read back from the files."""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pytest
import torch

from sacmap.core.records import DETECTION_COLUMNS
from sacmap.detection.heatmap_training import TRAIN_OPTIONS, HeatmapTrainConfig, build_parser
from sacmap.detection.training import TrainConfig
from sacmap.workflows.cli import main
from sacmap.workflows.cli.detect import PAPER_TRAIN_OPTIONS, _train_parser, train_config

STEMS = [("053_HAADF_15nm_Sample_PtNC_21Oct20", "053_Results.csv"),
         ("072_HAADF_15nm_Sample_PtNC_21Oct20", "072_Results.csv")]
#: a heat-map run of a few seconds: 3 steps of 2 crops, 2 simulated images (one held out), a tiny network
TINY = ["--steps", "3", "--n-sim", "2", "--width", "4,8", "--batch", "2", "--eval-every", "3", "--threads", "1",
        "--seed", "5"]


@pytest.fixture(scope="module")
def data(repo_dir, tmp_path_factory):
    """A data folder like the shared one (images/, labels/, split.csv) with the two bundled labelled images."""
    d = tmp_path_factory.mktemp("data")
    (d / "images").mkdir()
    (d / "labels").mkdir()
    rows = ["image,labels,split"]
    for stem, lab in STEMS:
        shutil.copy(repo_dir / "inputs/stem" / f"{stem}.tif", d / "images")
        shutil.copy(repo_dir / "inputs/stem/labels" / lab, d / "labels")
        rows.append(f"{stem}.tif,{lab},train")
    (d / "split.csv").write_text("\n".join(rows) + "\n")
    return d


def _parse(*words):
    return _train_parser().parse_args(list(words))


def test_the_model_picks_the_config_and_paper_is_the_default():
    a = _parse("--data", "D", "--split", "S", "-o", "W", "--epochs", "4", "--channels", "4,8,8")
    assert a.model == "paper"
    assert train_config(a) == TrainConfig(epochs=4, channels=(4, 8, 8))  # the rest: the bundled recipe's
    h = train_config(_parse("--model", "heatmap", "-o", "W", "--steps", "50", "--width", "8,16", "--real-frac",
                            "0.5", "--target-sigma", "1.2", "--seed", "3", "--threads", "2"))
    assert h == HeatmapTrainConfig(steps=50, width=(8, 16), real_frac=0.5, target_sigma_px=1.2, seed=3, threads=2)
    assert train_config(_parse("--model", "heatmap", "-o", "W")) == HeatmapTrainConfig()
    # the two entry points of the heat map parse the same options into the same config
    words = ["--steps", "50", "--dr-frac", "0.3", "--dr-density-max", "3", "--select-after", "0.6", "--lr", "0.002"]
    ns = build_parser().parse_args(["-o", "W", *words])
    assert HeatmapTrainConfig.from_options(**{k: getattr(ns, k) for k in TRAIN_OPTIONS}) == train_config(
        _parse("--model", "heatmap", "-o", "W", *words))


@pytest.mark.parametrize(
    "args, option",
    [
        (["--steps", "0"], "--steps"),
        (["--n-sim", "1"], "--n-sim"),  # one image is all held out: nothing to train on
        (["--real-frac", "1.5"], "--real-frac"),
        (["--dr-frac", "-0.1"], "--dr-frac"),
        (["--select-after", "2"], "--select-after"),
        (["--dr-density-max", "0.1"], "--dr-density-max"),  # below the density range's lower end, 0.3
        (["--width", "4"], "--width"),
        (["--width", "4,x"], "--width"),
        (["--lr", "0"], "--lr"),
        (["--target-sigma", "-1"], "--target-sigma"),
        (["--batch", "0"], "--batch"),
        (["--threads", "0"], "--threads"),
        (["--seed", "-1"], "--seed"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_heatmap_values_are_one_line_before_anything_is_written(tmp_path, capsys, args, option):
    assert main(["detect", "train", "--model", "heatmap", "-o", str(tmp_path / "w.pt"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err, err
    assert not any(tmp_path.iterdir())
    if option != "--device":  # the module's own command refuses them the same way
        assert main_module(["-o", str(tmp_path / "w.pt"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and option in err, err


def main_module(argv):
    from sacmap.detection.heatmap_training import main as heat_main

    return heat_main(argv)


@pytest.mark.parametrize(
    "model, args, flags",
    [
        ("heatmap", ["--epochs", "3"], ["--epochs"]),
        ("heatmap", ["--extra", "X", "--refit-all"], ["--extra", "--refit-all"]),
        ("heatmap", ["--holdout", "0"], ["--holdout"]),
        ("heatmap", ["--which", "validation"], ["--which"]),
        ("paper", ["--steps", "10"], ["--steps"]),
        ("paper", ["--n-sim", "10", "--lr", "0.01"], ["--n-sim", "--lr"]),
        ("paper", ["--batch", "8"], ["--batch"]),
        ("paper", ["--device", "cuda"], ["--device cuda"]),
    ],
)
def test_an_option_of_the_other_model_is_refused(tmp_path, capsys, model, args, flags):
    words = ["detect", "train", "--model", model, "-o", str(tmp_path / "w.pt"), "--data", str(tmp_path),
             "--split", str(tmp_path / "split.csv"), *args]
    assert main(words) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(f in err for f in flags), err
    assert not any(tmp_path.iterdir())


def test_every_option_belongs_to_both_models_or_to_one():
    p = _train_parser()
    dests = {a.dest for a in p._actions} - {"help"}
    common = {"model", "data", "split", "output", "seed", "threads", "device"}
    assert dests == common | set(PAPER_TRAIN_OPTIONS) | set(p.heatmap_only)
    assert not set(PAPER_TRAIN_OPTIONS) & set(p.heatmap_only)
    assert set(p.heatmap_only) == set(TRAIN_OPTIONS) - {"seed", "threads"}


def test_the_paper_cnn_still_needs_its_data_and_split(tmp_path, capsys):
    assert main(["detect", "train", "-o", str(tmp_path / "w.pt"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--split" in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    for run in (lambda: main(["detect", "train", "--model", "heatmap", "-o", str(tmp_path / "w.pt"), "--device",
                              "cuda"]),
                lambda: main_module(["-o", str(tmp_path / "w.pt"), "--device", "cuda"])):
        assert run() == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--device cuda" in err and "CUDA" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("model", ["paper", "heatmap"])
def test_an_output_that_is_an_input_is_refused_before_training(data, capsys, model):
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    for target in (data / "split.csv", data / "labels" / STEMS[0][1]):
        words = ["detect", "train", "--model", model, "--data", str(data), "--split", str(data / "split.csv"),
                 "-o", str(target)]
        assert main(words) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and target.name in err and "overwrite" in err, err
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before


def test_tiny_heatmap_training_through_the_cli_writes_a_usable_model(data, tmp_path, repo_dir, capsys):
    from sacmap.detection.detector import AtomDetector
    from sacmap.detection.heatmap import load_any_weights
    from sacmap.detection.io import read_image

    w = tmp_path / "heat.pt"
    args = ["detect", "train", "--model", "heatmap", "--data", str(data), "-o", str(w), *TINY]
    assert main(args) == 0
    assert str(w) in capsys.readouterr().out
    kind, net, meta = load_any_weights(w)
    assert kind == "heatmap" and net.width == (4, 8)
    assert meta["command"] == shlex.join(["sacmap", *args])  # the command as given, read back from the file
    assert meta["config"] == HeatmapTrainConfig(steps=3, n_sim=2, width=(4, 8), batch=2, eval_every=3, threads=1,
                                                seed=5).as_dict()
    assert sorted(meta["trained_on_real"]) == [s for s, _ in STEMS] and meta["holdout_images"] == []
    assert meta["selected_step"] == 3 and 0 < meta["threshold"] < 1
    # AtomDetector takes the file as a model and runs it through the pipeline
    raw, px, _ = read_image(repo_dir / "inputs/stem" / f"{STEMS[0][0]}.tif")
    det = AtomDetector(model=str(w), refine=False)
    assert det.kind == "heatmap"
    atoms = det.detect(raw, px)
    assert tuple(atoms.columns) == DETECTION_COLUMNS
    assert np.all((atoms["x_px"] >= 0) & (atoms["x_px"] < raw.shape[1]) & (atoms["y_px"] >= 0)
                  & (atoms["y_px"] < raw.shape[0]))
    assert (atoms["score"] > meta["threshold"]).all()  # the stored operating threshold is the one applied
    # the module's command is the same run: same weights (training is deterministic for a seed)
    w2 = tmp_path / "heat2.pt"
    assert main_module(["--data", str(data), "-o", str(w2), *TINY]) == 0
    _, _, meta2 = load_any_weights(w2)
    assert meta2["digest"] == meta["digest"] and meta2["config"] == meta["config"]
    assert meta2["command"] == shlex.join(["python", "-m", "sacmap.detection.heatmap_training", "--data", str(data),
                                           "-o", str(w2), *TINY])


# -- the bundled weights' recipes --------------------------------------------------------------------------------
#: config fields added after a bundled file was trained, at the value that leaves its run unchanged (checked in
#: the code: 0 = no near-miss negatives / soft targets / domain-randomised images, no extra draw, every checkpoint
#: eligible, no crowded or faint draws; near_px and dr_density_max only matter when near_frac / dr_frac > 0)
NEUTRAL = {"near_frac": 0.0, "soft_sigma_px": 0.0, "select_on_real": False, "real_weight": 1,
           "near_px": [3.0, 10.0], "dr_frac": 0.0, "dr_density_max": 8.0, "select_after": 0.0, "crowded_frac": 0.0,
           "faint_frac": 0.0}
#: the commands of the model card (detection/data/MODEL_CARD.md), data paths aside
CARD = {
    "detector.pt": ["--data", "D", "--split", "D/split.csv", "--extra", "simA", "--extra", "simB", "--threads", "1",
                    "-o", "detector.pt"],
    "heatmap.pt": ["--model", "heatmap", "--data", "D", "-o", "heatmap.pt"],
    "heatmap_crowded.pt": ["--model", "heatmap", "--data", "D", "--crowded-frac", "0.3", "--real-frac", "0.45", "-o",
                           "heatmap_crowded.pt"],
}


def _stored(repo_dir, name):
    payload = torch.load(repo_dir / "detection/data" / name, map_location="cpu", weights_only=True)
    return json.loads(payload["meta"])


def _same_recipe(cfg, stored: dict) -> list[str]:
    """Differences between a config and a file's recorded one (fields the file predates: at their neutral value)."""
    now = cfg.as_dict()
    diff = [f"{k}: {now.get(k)!r} != stored {v!r}" for k, v in stored.items() if now.get(k) != v]
    diff += [f"{k}: {now[k]!r} (not in the file)" for k in now.keys() - stored.keys() if now[k] != NEUTRAL.get(k, "?")]
    return diff


@pytest.mark.parametrize("name", ["detector.pt", "heatmap.pt", "heatmap_crowded.pt"])
def test_the_model_card_commands_give_the_bundled_configs(repo_dir, name):
    stored = _stored(repo_dir, name)
    assert _same_recipe(train_config(_parse(*CARD[name])), stored["config"]) == []
    # and the command recorded in the file, parsed again, gives the same config
    words = shlex.split(stored["command"])
    if words[:3] == ["python", "-m", "sacmap.detection.heatmap_training"]:
        ns = build_parser().parse_args(words[3:])
        cfg = HeatmapTrainConfig.from_options(**{k: getattr(ns, k) for k in TRAIN_OPTIONS})
        assert cfg == train_config(_parse("--model", "heatmap", *words[3:]))
    else:
        assert words[:3] == ["sacmap", "detect", "train"]
        cfg = train_config(_parse(*words[3:]))
    assert _same_recipe(cfg, stored["config"]) == []


def test_the_last_evaluation_off_the_grid_averages_its_own_steps():
    # 2 steps evaluated at step 2 whether eval_every is 2 or 1000: the same run, so the same mean loss
    from sacmap.detection.heatmap_training import train_heatmap

    kw = dict(width=(4, 8), steps=2, batch=2, crop=32, n_sim=2, sim_frame_px=48, threads=1)
    _, on = train_heatmap([], [], HeatmapTrainConfig(eval_every=2, **kw))
    _, off = train_heatmap([], [], HeatmapTrainConfig(eval_every=1000, **kw))
    assert [h["step"] for h in off["history"]] == [2]
    assert off["history"][0]["train_loss"] == on["history"][0]["train_loss"] > 0
