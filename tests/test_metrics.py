"""The scores mean something: floor, noise, collapse, degradation, determinism, cache."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from gan_core.config import from_dict
from gan_core.evaluation import Scorer, evaluate_run, sample_images, scores
from gan_core import evaluators
from gan_core.evaluation.evaluator import evaluator_data, load_evaluator
from gan_core.evaluators import cache_folder
from gan_core.models import load_family
from gan_core.reporting.prose import score_reading
from gan_core.rundir import RunDir, write_json
from gan_core.training import train

from .conftest import real_data_name


def digits_config(tmp_path, **eval_overrides):
    """Digits scored by the evaluator shipped for them (or, with evaluator: train, one trained here)."""
    return from_dict({"data": {"name": "digits"},
                      "eval": {"cache_dir": str(tmp_path), "samples": 297, "checkpoint_samples": 200,
                               **eval_overrides}}, "test")


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    return Scorer(digits_config(tmp_path_factory.mktemp("cache")), log=lambda s: None)


def real_train(scorer, n=297):
    return evaluator_data(scorer.config, "train", subset=n).images


@pytest.mark.parametrize("n_real, n_fake, k", [(300, 200, 5), (257, 400, 3)])
def test_prdc_matches_the_prdc_package(n_real, n_fake, k):
    """Our block-wise torch estimators give the reference implementation's numbers."""
    import contextlib
    import io

    from prdc import compute_prdc
    generator = torch.Generator().manual_seed(n_real)
    real = torch.randn(n_real, 16, generator=generator, dtype=torch.float64)
    fake = torch.randn(n_fake, 16, generator=generator, dtype=torch.float64) * 1.2 + 0.3
    with contextlib.redirect_stdout(io.StringIO()):
        expected = compute_prdc(real.float().numpy(), fake.float().numpy(), nearest_k=k)
    ours = scores.prdc(real, fake, k, chunk=64)  # several row blocks
    assert {key: ours[key] for key in expected} == pytest.approx({key: float(v) for key, v in expected.items()},
                                                                abs=1e-9)
    assert scores.prdc(real, fake, k, scores.kth_radii(real, k)) == ours
    for key in ("precision", "density"):  # their intervals hold them
        assert ours[f"{key}_ci"][0] <= ours[key] <= ours[f"{key}_ci"][1]


class Features(torch.nn.Module):
    """torchmetrics' FID and KID on features we give them: their 'images' are the features."""
    num_features = 8

    def forward(self, x):
        return x


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_fd_and_kid_match_torchmetrics_and_the_fd_interval_holds_it():
    """Our FD and KID estimators give torchmetrics' numbers (the reference implementation; the
    workbook does not import it: 8 s of imports per report on a 2-core CPU)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 8, generator=generator, dtype=torch.float64)
    fake = torch.randn(2000, 8, generator=generator, dtype=torch.float64) * 1.3 + 0.2
    result = scores.feature_scores(real, fake, from_dict({}, "t").eval)
    fid = FrechetInceptionDistance(feature=Features())
    kid = KernelInceptionDistance(feature=Features(), subsets=1, subset_size=300)  # one subset: all samples
    for metric, (r, f) in ((fid, (real, fake)), (kid, (real[:300], fake[:300]))):
        metric.update(r, real=True)
        metric.update(f, real=False)
    assert result["fd"] == pytest.approx(float(fid.compute()), rel=1e-6)
    ours = scores.kernel_distance(real[:300], fake[:300], subsets=1, subset_size=300)
    assert ours == pytest.approx((float(kid.compute()[0]), 0.0), rel=1e-5, abs=1e-9)
    spread = scores.kernel_distance(real, fake, subsets=50, subset_size=300)  # subsets: a mean and a spread
    assert abs(spread[0] - ours[0]) < 3 * spread[1] and spread[1] > 0
    assert scores.kernel_distance(real, fake, subsets=5, subset_size=300, seed=1) == \
        scores.kernel_distance(real, fake, subsets=5, subset_size=300, seed=1)  # its own seeded subsets
    low, high = result["fd_ci"]
    assert low < result["fd"] < high and high - low < 0.2 * result["fd"]
    wider = scores.fd_interval(real, fake[:200])  # fewer samples, more noise
    assert wider[1] - wider[0] > high - low


def test_fd_interval_covers_the_true_fd_in_most_repetitions():
    """Gaussians with known FD (equal covariances: FD = |mu1 - mu2|^2): the 95 % interval from
    one draw of generated samples holds it in most of 20 draws."""
    generator = torch.Generator().manual_seed(0)
    d, shift = 8, 0.5
    real = torch.randn(50_000, d, generator=generator, dtype=torch.float64)  # the real statistics: near exact
    truth = d * shift ** 2
    held = 0
    for _ in range(20):
        fake = torch.randn(3000, d, generator=generator, dtype=torch.float64) + shift
        low, high = scores.fd_interval(real, fake, resamples=50)
        held += low <= truth <= high
    assert held >= 15, held


def test_the_floor_is_computed_once_per_evaluator(scorer, monkeypatch):
    first = scorer.floor(150)
    calls = []
    monkeypatch.setattr(scorer, "score", lambda *a, **kw: calls.append(a))
    assert scorer.floor(150) == first and not calls  # read from beside the evaluator
    floors = list(cache_folder(scorer.config).glob("*.floor-*.json"))
    assert floors and all(json.loads(p.read_text())["key"]["evaluator"] == scorer.info["id"] for p in floors)


def test_class_scores_count_only_the_trained_classes():
    """A 3-class run: covered classes, KL and the histogram are over those 3; samples the
    evaluator puts elsewhere are counted apart, not as covered classes."""
    names = [f"c{k}" for k in range(10)]
    reference = torch.tensor([1, 3, 7] * 100)  # the test split filtered to the trained classes
    predicted = torch.tensor([1] * 50 + [3] * 42 + [8] * 8)  # no 7; 8 % in an untrained class
    result = scores.class_scores(predicted, reference, names)
    assert result["classes_in_data"] == 3 and result["classes_covered"] == 2
    assert list(result["class_histogram"]) == ["c1", "c3", "c7"]
    assert result["outside_share"] == pytest.approx(0.08) and result["outside_histogram"] == {"c8": 0.08}
    balanced = scores.class_scores(torch.tensor([1, 3, 7] * 30 + [8] * 10), reference, names)
    assert balanced["class_kl"] == pytest.approx(0, abs=1e-5)  # over the trained classes: as the data
    reading = " ".join(score_reading({"available": True, "name": "FD", "final": {
        **result, "fd": 5.0, "kid": 0.1, "kid_std": 0.01, "precision": 0.5, "recall": 0.5, "samples": 100},
        "floor": {"fd": 1.0, "kid": 0.0, "precision": 0.9, "recall": 0.9}}))
    assert "covers 2 of the 3 classes it was trained on" in reading and "8% look like c8, a class not trained on" in reading


def test_the_evaluator_folds_batch_norm_into_its_convolutions_unchanged():
    """Scoring runs the network with each BatchNorm folded into its convolution: the same
    features and classes as the network as trained."""
    from gan_core.evaluation.evaluator import Evaluator
    torch.manual_seed(0)
    trained = Evaluator(1, 10).eval()
    for layer in trained.modules():  # statistics and affine parameters far from their defaults
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.normal_(), layer.running_var.uniform_(0.2, 3.0)
            layer.weight.data.normal_(), layer.bias.data.normal_()
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        features, logits = trained.features(images), trained(images)
        fused = trained.fuse()
        assert not any(isinstance(layer, torch.nn.BatchNorm2d) for layer in fused.modules())
        assert torch.allclose(fused.features(images), features, atol=1e-5)
        assert torch.equal(fused(images).argmax(1), logits.argmax(1))


def test_evaluator_learns_digits(scorer):
    assert scorer.info["held_out"] >= 0.9 and scorer.info["held_out_name"] == "test accuracy"
    assert scorer.name == "FD (digits classifier)"


def test_real_vs_real_is_the_floor(scorer):
    floor = scorer.floor(297)
    assert floor["precision"] > 0.8 and floor["recall"] > 0.8 and floor["coverage"] > 0.7
    assert floor["classes_covered"] == 10 and floor["class_kl"] < 0.05
    noise = scorer.score(torch.rand(297, 1, 28, 28) * 2 - 1)
    assert noise["fd"] > 10 * floor["fd"]
    assert noise["precision"] < 0.1


def test_collapsed_generator(scorer):
    data = evaluator_data(scorer.config, "train")
    threes = data.images[data.labels == 3][:297]
    collapsed = threes[torch.arange(297) % len(threes)]
    scores = scorer.score(collapsed)
    assert scores["classes_covered"] == 1
    assert scores["class_histogram"]["3"] > 0.9
    assert scores["recall"] < 0.3 and scores["coverage"] < 0.3
    assert scores["class_kl"] > 1.5  # about ln 10


def blur(images, sigma):
    radius = 3
    x = torch.arange(-radius, radius + 1, dtype=torch.float)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


def test_fd_rises_with_noise_and_blur(scorer):
    real = real_train(scorer)
    g = torch.Generator().manual_seed(0)
    noisy = [scorer.score((real + s * torch.randn(real.shape, generator=g)).clamp(-1, 1))["fd"]
             for s in (0.0, 0.2, 0.4, 0.8)]
    blurred = [scorer.score(blur(real, s))["fd"] for s in (0.5, 1.0, 1.5, 2.5)]
    assert noisy == sorted(noisy) and noisy[-1] > 5 * noisy[0]
    assert blurred == sorted(blurred)


def test_scores_are_deterministic(scorer):
    images = real_train(scorer)[:200]
    assert scorer.score(images) == scorer.score(images)


def test_stale_cache_is_refused_and_retrained(tmp_path):
    config = digits_config(tmp_path, evaluator="train", evaluator_epochs=1)
    load_evaluator(config, log=lambda s: None)
    path = next((tmp_path / "evaluators").glob("digits-*.pt"))
    state = torch.load(path, weights_only=True)
    state["recipe_hash"] = "0" * 12
    state["weights"] = {k: torch.zeros_like(v) for k, v in state["weights"].items()}
    torch.save(state, path)
    lines = []
    model, info = load_evaluator(config, log=lines.append)
    assert any("another key or version; computing it again" in line for line in lines)
    assert torch.load(path, weights_only=True)["recipe_hash"] == evaluators.recipe_hash(evaluators.recipe(config))
    assert any(v.abs().sum() > 0 for v in model.state_dict().values())  # trained again, not the zeroed ones


def test_evaluate_run_writes_scores(tmp_path):
    config = from_dict({
        "data": {"name": "digits", "subset": 256},
        "model": {"latent_dim": 8}, "dcgan": {"ngf": 4, "ndf": 4},
        "train": {"epochs": 2, "batch_size": 32, "threads": 1, "progress": False, "num_samples": 16},
        "eval": {"cache_dir": str(tmp_path / "cache"), "samples": 200, "checkpoint_samples": 100}}, "test")
    train(config, tmp_path / "run", log=lambda s: None)
    result = evaluate_run(tmp_path / "run", log=lambda s: None)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluation"]
    assert saved["final"]["fd"] == pytest.approx(result["final"]["fd"])
    # another evaluation goes beside it: the run's canonical scores (what its reports show) stay
    extra = evaluate_run(tmp_path / "run", samples=100, checkpoints=False, log=lambda s: None,
                         save=tmp_path / "run" / "evaluations" / "e.json")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluation"] == saved
    assert json.loads((tmp_path / "run" / "evaluations" / "e.json").read_text())["final"]["samples"] == 100
    assert extra["final"]["samples"] == 100
    assert [r["epoch"] for r in result["over_training"]] == [0, 1, 2]
    assert result["final"]["samples"] == 200 and result["floor"]["fd"] < result["final"]["fd"]
    assert score_reading(result)[0].startswith("FD (digits classifier)")


def test_a_prepared_real_side_leaves_a_run_nothing_to_compute(tmp_path):
    """What a sweep prepares in a process of its own while its runs train (the evaluator's test
    features, k-NN radii and the floors at both sample counts) is all a run's evaluation needs:
    it computes none of it and scores as it does on an empty cache; the stamp says so without torch."""
    import subprocess
    import sys

    def trained(name):
        config = from_dict({
            "data": {"name": "digits", "subset": 256}, "model": {"latent_dim": 8}, "dcgan": {"ngf": 4, "ndf": 4},
            "train": {"epochs": 2, "batch_size": 32, "threads": 1, "progress": False, "num_samples": 16},
            "eval": {"cache_dir": str(tmp_path / name), "samples": 200, "checkpoint_samples": 100}}, "test")
        train(config, tmp_path / name / "run", log=lambda s: None)
        return config

    cold, prepared = trained("a"), trained("b")
    said = []
    expected = evaluate_run(tmp_path / "a" / "run", log=said.append)
    assert any("computing the features" in line for line in said)  # an empty cache: the run made it all
    assert evaluators.reference_stamp(cold)[0].exists()  # and says so: no sweep prepares it again
    assert not evaluators.reference_stamp(prepared)[0].exists()
    subprocess.run([sys.executable, "-m", "gan_core.evaluation.run", str(RunDir(tmp_path / "b" / "run").config)],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    stamp, key = evaluators.reference_stamp(prepared)
    assert json.loads(stamp.read_text()) == key and key["samples"] == 200 and key["checkpoint_samples"] == 100
    said = []
    result = evaluate_run(tmp_path / "b" / "run", log=said.append)
    assert not any("computing" in line or "scoring" in line for line in said), said
    for part in ("final", "floor", "over_training"):
        assert result[part] == expected[part], part


@pytest.mark.slow
def test_fashion_mnist_evaluator_reaches_90_percent(tmp_path):
    if real_data_name() != "fashion-mnist":
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    config = from_dict({"eval": {"cache_dir": str(tmp_path), "evaluator": "train"}}, "test")  # trained here
    _, info = load_evaluator(config, log=lambda s: None)
    assert info["held_out"] >= 0.90 and info["source"].startswith("trained on this machine")


@pytest.mark.slow
def test_conditional_samples_are_of_the_requested_class(scorer, tmp_path):
    """A conditional DCGAN trained briefly on digits: the evaluator puts its samples in the
    class they were asked for far more often than chance (0.1)."""
    config = from_dict({"data": {"name": "digits"}, "model": {"conditional": True, "latent_dim": 16}, "dcgan": {"ngf": 16, "ndf": 16},
                        "train": {"epochs": 10, "batch_size": 32, "progress": False, "threads": 1, "log_every": 10}}, "test")
    train(config, tmp_path, log=lambda s: None)
    family, _ = load_family(tmp_path / "checkpoints" / "last.pt")
    images, requested = sample_images(family, 300, seed=1)
    assert requested.tolist() == [k % 10 for k in range(300)]
    scores = scorer.score(images, requested)
    assert scores["conditional_accuracy"] > 0.5
    assert len(scores["conditional_accuracy_per_class"]) == 10
    assert "conditional_accuracy" not in scorer.score(images)


def test_the_shipped_evaluator_scores_alike_on_every_machine(tmp_path):
    """Fashion-MNIST and digits are scored with the networks that ship with gan_core: their
    files match the manifest, a first use trains nothing, and two empty caches (two machines)
    give the same scores for the same samples."""
    manifest = json.loads((evaluators.FOLDER / "manifest.json").read_text())
    for name in evaluators.SHIPPED:
        entry = manifest[evaluators.shipped_file(name).name]
        assert entry["sha256"] == evaluators.shipped_digest(name) and entry["recipe"] == evaluators.shipped_recipe(name)
        assert entry["test_accuracy"] >= 0.9 and entry["bytes"] < 5_000_000
    said = []
    first = Scorer(digits_config(tmp_path / "a"), log=said.append)
    second = Scorer(digits_config(tmp_path / "b"), log=lambda s: None)
    assert not any("training the" in line for line in said) and first.info["version"].startswith("digits-v3 (")
    images = real_train(first)[:120]
    assert first.score(images) == second.score(images)


def test_a_damaged_shipped_evaluator_is_refused(tmp_path, monkeypatch):
    import shutil
    folder = tmp_path / "evaluators"
    shutil.copytree(evaluators.FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    damaged = folder / evaluators.shipped_file("digits").name
    damaged.write_bytes(damaged.read_bytes()[:-10])
    monkeypatch.setattr(evaluators, "FOLDER", folder)
    with pytest.raises(evaluators.EvaluatorError, match="does not match its manifest"):
        load_evaluator(digits_config(tmp_path), log=lambda s: None)


def test_a_run_reads_the_fds_of_its_configurations_seeds(tmp_path):
    """For the evaluation page's seed sentence: the FDs of the finished seeds of the run's own
    configuration, read from the sweep folder's files; [] for a run without seeds."""
    runs = [{"name": f"{c}-s{s}", "configuration": c, "seed": s} for c in ("a", "b") for s in (0, 1, 2)]
    write_json(tmp_path / "sweep.json", {"runs": runs})
    for fd, run in zip((10.0, 12.0, None, 30.0, 31.0, 32.0), runs):
        RunDir(tmp_path / run["name"]).root.mkdir()
        if fd is not None:  # a-s2 has not been scored yet
            RunDir(tmp_path / run["name"]).update_metrics(evaluation={"final": {"fd": fd}})
    assert RunDir(tmp_path / "a-s1").seed_fds() == [10.0, 12.0]
    assert RunDir(tmp_path / "b-s0").seed_fds() == [30.0, 31.0, 32.0]
    write_json(tmp_path / "sweep.json", {"runs": [{**r, "seed": None} for r in runs]})
    assert RunDir(tmp_path / "a-s1").seed_fds() == []
