"""Issue 33: what identifies an evaluator trained from a user's own images (torch-free part)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from gan_core import evaluators
from tests.images import one_folder, shapes_folder


def _config(root, name="imagefolder"):
    return SimpleNamespace(data=SimpleNamespace(name=name, root=str(root)))


def test_labels_from_class_folders(tmp_path):
    shapes_folder(tmp_path / "shapes", per_class=3)
    one_folder(tmp_path / "art", count=3, size=32)
    assert evaluators.folder_classes(_config(tmp_path / "shapes")) == ["class_0", "class_1", "class_2"]
    assert evaluators.own_recipe(_user_config(tmp_path / "shapes", tmp_path, 32))["labelled"]
    assert not evaluators.own_recipe(_user_config(tmp_path / "art", tmp_path, 32))["labelled"]


def test_stride_two_above_48_px(tmp_path):
    root = shapes_folder(tmp_path / "shapes", per_class=3)
    strides = {size: evaluators.own_recipe(_user_config(root, tmp_path, size))["stride"] for size in (28, 32, 56, 64, 128)}
    assert strides == {28: 1, 32: 1, 56: 2, 64: 2, 128: 2}


def test_fingerprint_follows_the_files(tmp_path):
    root = shapes_folder(tmp_path / "shapes", per_class=3, size=16)
    config = _config(root)
    first = evaluators.fingerprint(config)
    assert evaluators.fingerprint(config) == first  # unchanged folder: the same evaluator
    image = root / "class_0" / "0000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    touched = evaluators.fingerprint(config)
    assert touched != first
    (root / "class_1" / "0001.png").unlink()
    assert evaluators.fingerprint(config) not in (first, touched)
    (root / "class_0" / "notes.txt").write_text("not an image")
    assert len(evaluators.data_files(config)[1]) == 8


def test_no_files_is_an_error(tmp_path):
    with pytest.raises(evaluators.EvaluatorError, match="no imagefolder files"):
        evaluators.fingerprint(_config(tmp_path))
    with pytest.raises(evaluators.EvaluatorError, match="no cifar10 files"):
        evaluators.fingerprint(_config(tmp_path, name="cifar10"))


def _user_config(root, tmp_path, size, **evaluation):
    """The config of a user's folder, as a sweep's run has it."""
    from gan_core.config import from_dict
    return from_dict({"data": {"name": "imagefolder", "root": str(root), "image_size": size},
                      "eval": {"cache_dir": str(tmp_path / "cache"), **evaluation}})


def _images(config):
    import torch

    from gan_core.evaluation import trained
    data = trained.own_data(config)
    return trained.decode(data, torch.arange(len(data)))


@pytest.mark.slow  # ~7 s idle, past 10 s on the shared machine
def test_labelled_folder_trains_a_classifier_and_scores(tmp_path):
    from gan_core.config import EvalConfig
    from gan_core.evaluation import trained
    from gan_core.evaluation.evaluator import features_and_classes
    from gan_core.evaluation.scores import class_scores, prdc

    root = shapes_folder(tmp_path / "shapes", per_class=40, size=64)
    config = _user_config(root, tmp_path, 64)
    lines = []
    model, info = trained.load_trained(config, lines.append, epochs=6, batch_size=32)
    assert info["labelled"] and info["classes"] == ["class_0", "class_1", "class_2"]
    assert model.body[0].stride == (2, 2)  # 64 px: the first convolution halves the size
    assert info["held_out"] >= 0.9, lines
    assert "with labels (3 class folders)" in info["source"] and info["held_out_name"] == "held-out accuracy"
    real, real_classes = features_and_classes(model, _images(config))
    every = features_and_classes(model, _images(_user_config(shapes_folder(tmp_path / "more", per_class=20, seed=1),
                                                             tmp_path, 64)))
    one = features_and_classes(model, _images(_user_config(shapes_folder(tmp_path / "one", per_class=60, classes=1,
                                                                         seed=2), tmp_path, 64)))
    k = EvalConfig().nearest_k
    all_scores = {**prdc(real, every[0], k), **class_scores(every[1], real_classes, info["classes"])}
    one_scores = {**prdc(real, one[0], k), **class_scores(one[1], real_classes, info["classes"])}
    assert one_scores["recall"] < all_scores["recall"]
    assert one_scores["classes_covered"] < all_scores["classes_covered"]

    # the cache is reused: nothing trained again
    lines.clear()
    again, info2 = trained.load_trained(config, lines.append, epochs=6, batch_size=32)
    assert info2["version"] == info["version"] and not lines
    # a truncated cache file is recomputed
    path = trained.trained_path(config, info["recipe"])
    path.write_bytes(path.read_bytes()[:100])
    lines.clear()
    _, info3 = trained.load_trained(config, lines.append, epochs=6, batch_size=32)
    assert any("unreadable cache file" in line for line in lines) and info3["version"] == info["version"]
    # a changed folder: a new fingerprint, a new evaluator
    shapes_folder(root, per_class=41, size=64, seed=5)
    lines.clear()
    _, info4 = trained.load_trained(config, lines.append, epochs=6, batch_size=32)
    assert info4["version"] != info["version"] and any("training" in line for line in lines)


def test_one_folder_trains_simclr(tmp_path):
    from gan_core.evaluation import trained

    root = one_folder(tmp_path / "art", count=60, size=128)
    config = _user_config(root, tmp_path, 128)
    model, info = trained.load_trained(config, lambda line: None, epochs=2, batch_size=32)
    assert not info["labelled"] and info["recipe"]["method"] == "simclr"
    assert "without labels" in info["source"] and "retrieval" in info["held_out_name"]
    assert 0.0 <= info["held_out"] <= 1.0
    feats = model.features(_images(config)[:4])
    assert feats.shape == (4, 128)


def test_a_folder_too_small_for_an_evaluator_says_so(tmp_path):
    root = one_folder(tmp_path / "few", count=20, size=16)
    said = evaluators.unscored(_user_config(root, tmp_path, 16))
    assert said.startswith("20 images under data.root") and str(evaluators.OWN_MIN_IMAGES) in said
    from gan_core.config import Config
    assert evaluators.unscored(Config()) is None  # Fashion-MNIST: a labelled set


@pytest.mark.slow  # ~25 s: trains a tiny GAN and a SimCLR evaluator on 500 images
def test_a_run_on_one_unlabelled_folder_is_scored_without_class_scores(tmp_path, tiny_config):
    from gan_core.evaluation import evaluate_run
    from gan_core.evaluation.run import NO_CLASSES
    from gan_core.reporting.prose import score_reading
    from gan_core.training import train

    root = one_folder(tmp_path / "art", count=evaluators.OWN_MIN_IMAGES, size=32)
    config = tiny_config(data={"name": "imagefolder", "root": str(root), "image_size": 32, "subset": None},
                         eval={"samples": 200, "checkpoint_samples": 50, "cache_dir": str(tmp_path / "cache"),
                               "evaluator_epochs": 1})
    train(config, tmp_path / "run", log=lambda line: None)
    result = evaluate_run(tmp_path / "run", log=lambda line: None)
    assert result["available"] and not result["evaluator"]["labelled"], result.get("reason")
    assert result["name"] == "FD (image folder SimCLR features)" and "without labels" in result["evaluator"]["source"]
    assert "classes_covered" not in result["final"] and "class_histogram" not in result["floor"]
    assert result["final"]["real_samples"] == 50  # the held-out tenth
    assert result["floor"]["fd"] < result["final"]["fd"]
    assert result["note"] == NO_CLASSES and NO_CLASSES in score_reading(result)
    assert len(result["over_training"]) == 3  # the floor and two epochs


@pytest.mark.slow  # ~40 s: the digits as folders, two trained evaluators, three small generators
def test_the_validity_benchmark_runs_on_the_digits(tmp_path):
    """benchmarks/evaluator_validity.py end to end on the digits, scaled down (one seed, one
    snapshot): what it writes, and the floor and noise each evaluator must separate."""
    import argparse
    import importlib.util

    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluator_validity.py"
    spec = importlib.util.spec_from_file_location("evaluator_validity", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(work=tmp_path, seeds=[0], digits_epochs=[3], epochs=1, samples=148, threads=1,
                              size=bench.SIZE)
    result = bench.validate("digits", args, lambda line: None)
    assert result["generators"] == ["s0 epoch 3", "early (20 steps)", "early (60 steps)",
                                    "mode-dropping (3 classes)", "mode-dropping (1 class)", "noise"]
    assert result["evaluators"]["shipped"]["held_out"] > 0.9
    for kind in bench.EVALUATORS:
        found = result["checks"][kind]
        assert found["floor_below_all"], (kind, found)
        assert found["noise"] > found["floor_heldout"] * 5, (kind, found)
        assert -1 <= found["spearman"] <= 1
    assert "| held-out floor below every generator | yes" in bench.table(result)
    bench.figure([result], tmp_path / "validity.png")
    assert (tmp_path / "validity.png").stat().st_size > 10_000
