"""Comparisons over seeds: intervals, verdicts in words, ties said as ties; seeds in sweep files."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gan_core.analysis import comparison
from gan_core.config import ConfigError
from gan_core.orchestration.sweep import load_sweep
from gan_core.reporting import sweep_figures

from .test_sweep import write_sweep


def runs_table(fds: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"run": f"z{z}-s{seed}", "configuration": f"z{z}", "seed": seed, "model.latent_dim": str(z),
             "status": "ok", "fd": fd, "precision": 0.5, "final_loss_d": 1.0}
            for z, values in fds.items() for seed, fd in enumerate(values)]
    return pd.DataFrame(rows)


def test_t_interval_is_students():
    mean, std, low, high = comparison.t_interval([70.0, 75.0, 80.0])
    assert (mean, std) == (75.0, 5.0)
    half = stats.t.ppf(0.975, 2) * 5.0 / math.sqrt(3)
    assert (low, high) == pytest.approx((75 - half, 75 + half))
    assert all(math.isnan(v) for v in comparison.t_interval([70.0])[1:])


def test_welch_interval_matches_scipy():
    a, b = np.array([75.0, 71.0, 79.0]), np.array([88.0, 85.0, 91.0, 87.0])
    diff, low, high = comparison.welch_interval(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (low, high) == pytest.approx((expected.low, expected.high))


def test_verdicts_say_better_no_conclusion_or_one_seed():
    clear = comparison.verdicts(runs_table({10: [75, 71, 79], 100: [88, 85, 91]}), ["model.latent_dim"])
    assert len(clear) == 1 and clear[0].startswith("latent_dim=10 is better: FD 75 +/- 4 vs 88 +/- 3 (3 seeds)")
    tied = comparison.verdicts(runs_table({10: [75, 85, 79], 100: [80, 76, 88]}), ["model.latent_dim"])
    assert "no conclusion at 3 seeds" in tied[0]
    single = comparison.verdicts(runs_table({10: [75], 100: [88]}), ["model.latent_dim"])
    assert "one seed: no conclusion possible" in single[0]


def test_per_configuration_rows_and_ties():
    table = runs_table({10: [75, 71, 79], 100: [88, 85, 91], 50: [86, 90, 87]})
    configurations = comparison.per_configuration(table, ["model.latent_dim"])
    assert list(configurations["configuration"]) == ["z10", "z100", "z50"]
    assert list(configurations["n"]) == [3, 3, 3]
    z10 = configurations.iloc[0]
    assert z10["fd_mean"] == 75 and z10["fd_std"] == 4 and z10["fd_ci_low"] < 75 < z10["fd_ci_high"]
    assert {"precision_mean", "final_loss_d_mean", "final_loss_d_ci_high"} <= set(configurations)
    notes = comparison.rank_with_ties(configurations, table)
    assert notes["z10"] == "better than the next" and notes["z50"] == "tied with the next (within noise)"


def test_seed_figures_draw(tmp_path):
    table = runs_table({10: [75, 71, 79], 100: [88, 85, 91]})
    table["recall"], table["coverage"] = 0.4, 0.6
    fig = sweep_figures.scores_by_setting(table, "model.latent_dim")
    assert len(fig.axes) == 4 and fig.axes[0].get_ylabel().startswith("FD")
    long = pd.DataFrame([{"configuration": c, "seed": s, "epoch": e, "fd": 100 - e - s}
                         for c in ("z10", "z100") for s in range(3) for e in (1, 2, 3)])
    fig = sweep_figures.curves_with_seeds(long, "fd", "FD", "FD over training")
    assert fig.axes[0].get_xlabel() == "epoch" and fig.axes[0].collections  # the seed bands


def test_seeds_make_one_run_per_configuration_and_seed(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, "grid:\n  model.latent_dim: [8, 16]\nseeds: [0, 3]\n"))
    assert [(r.name, r.configuration, r.config.train.seed) for r in sweep.runs] == [
        ("z8-s0", "z8", 0), ("z8-s3", "z8", 3), ("z16-s0", "z16", 0), ("z16-s3", "z16", 3)]


@pytest.mark.parametrize("body, message", [
    ("seeds: []\n", "seeds must be a non-empty list"),
    ("seeds: [0, 0]\n", "repeats a seed"),
    ("seeds: [0, 1.5]\n", "1.5 is not a non-negative integer"),
    ("seeds: 3\n", "seeds must be a non-empty list"),
    ("grid:\n  train.seed: [0, 1]\nseeds: [0, 1]\n", "grid sets train.seed"),
])
def test_bad_seeds_are_refused(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, body))


@pytest.mark.slow
def test_a_seeded_sweep_compares_its_configurations(tmp_path):
    """Two configurations x 2 seeds through training and evaluation: comparison.csv, the verdict
    in the index, and seaborn figures with content."""
    import json

    from gan_core.orchestration.runner import run_sweep
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8, 32]\nseeds: [0, 1]\n"
                                 "report: {notebooks: [02_training, 06_evaluation]}\n")
    assert run_sweep(load_sweep(path), tmp_path / "reports", jobs=2, log=lambda s: None) == 0
    folder = tmp_path / "reports" / "s"
    table = pd.read_csv(folder / "comparison.csv")
    assert list(table["configuration"]) == ["z8", "z32"] and list(table["n"]) == [2, 2]
    assert {"fd_mean", "fd_std", "fd_ci_low", "fd_ci_high", "final_loss_g_mean"} <= set(table)
    page = (folder / "index.html").read_text()
    verdict = page.index("Verdict")
    assert verdict < page.index("Runs</h2>")  # the index opens with it
    assert "latent_dim=8 vs latent_dim=32" in page or "is better" in page
    assert "Scores by setting" in page and page.count("data:image/png") >= 5  # the seaborn figures
    notebook = json.loads((folder / "index.ipynb").read_text())
    assert not [o for c in notebook["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
