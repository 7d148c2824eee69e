"""Comparisons over seeds: intervals in range, verdicts on the pairs a sweep asks about with a
Holm correction and a quality gate, ties said as ties; claims declared before the runs and
answered with power; seeds in sweep files."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gan_core.analysis import claims, comparison
from gan_core.analysis import stats as seed_stats
from gan_core.config import ConfigError
from gan_core.orchestration.sweep import load_sweep
from gan_core.reporting import index, sweep_figures

from .test_sweep import write_sweep


def runs_table(fds: dict[str, list[float]], recall: float = 0.3, reference: str = "") -> pd.DataFrame:
    rows = [{"run": f"z{z}-s{seed}", "configuration": f"z{z}", "seed": seed, "model.latent_dim": str(z),
             "variant": "", "reference": reference if f"z{z}" != reference else "", "status": "ok", "fd": fd,
             "precision": 0.5, "recall": recall, "coverage": 0.4, "classes": 10, "classes_in_data": 10,
             "final_loss_d": 1.0}
            for z, values in fds.items() for seed, fd in enumerate(values)]
    return pd.DataFrame(rows)


def test_t_interval_is_students_and_stays_in_range():
    mean, std, low, high = seed_stats.t_interval([70.0, 75.0, 80.0])
    assert (mean, std) == (75.0, 5.0)
    half = stats.t.ppf(0.975, 2) * 5.0 / math.sqrt(3)
    assert (low, high) == pytest.approx((75 - half, 75 + half))
    assert all(math.isnan(v) for v in seed_stats.t_interval([70.0])[1:])
    # two seeds of a share: Student's interval would reach [-0.74, 0.92]; a share lies in [0, 1]
    assert seed_stats.t_interval([0.02, 0.16], bounds=(0, 1))[2:] == (0, pytest.approx(0.09 + 12.706 * 0.07, abs=1e-3))
    table = comparison.per_configuration(runs_table({10: [2.0, 40.0]}), ["model.latent_dim"])
    assert table["fd_ci_low"].iloc[0] == 0  # FD >= 0


def test_welch_matches_scipy_and_hedges_g():
    a, b = np.array([75.0, 71.0, 79.0]), np.array([88.0, 85.0, 91.0, 87.0])
    d = seed_stats.welch(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert d.diff == pytest.approx(a.mean() - b.mean())
    assert (d.low, d.high) == pytest.approx(tuple(expected.confidence_interval(0.95)))
    assert d.p == pytest.approx(expected.pvalue)
    pooled = math.sqrt((2 * a.var(ddof=1) + 3 * b.var(ddof=1)) / 5)
    assert d.g == pytest.approx((a.mean() - b.mean()) / pooled * (1 - 3 / (4 * 7 - 9)))


def test_holm_and_power():
    assert seed_stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # at 3 seeds a side only about 3 standard deviations are found with 80 % power, about 2 at 5
    assert seed_stats.detectable(3, 3) == pytest.approx(3.07, abs=0.01)
    assert seed_stats.detectable(5, 5) == pytest.approx(2.02, abs=0.01)
    assert seed_stats.power(seed_stats.detectable(4, 4), 4, 4) == pytest.approx(0.8)
    assert seed_stats.seeds_needed(1.0) == 17  # the textbook n for d = 1 (two-sided 5 %, 80 %)


def test_verdicts_name_both_sides_and_correct_for_every_comparison():
    clear = runs_table({10: [75, 71, 79], 100: [98, 95, 101]}, recall=0.3)
    clear.loc[clear["configuration"] == "z10", "recall"] = [0.20, 0.21, 0.22]
    tests = comparison.compare(clear, comparison.pairs(clear, ["model.latent_dim"]))
    assert list(tests["score"]) == ["fd", "precision", "recall", "coverage"]  # every score, one pair
    fd = tests.set_index("score").loc["fd"]
    assert fd["verdict"] == "A better" and fd["p_holm"] == pytest.approx(min(1, 4 * fd["p"]))  # Holm over 4 tests
    assert tests.set_index("score").loc["recall", "verdict"] == "B better"
    said = comparison.sentences(tests, clear, {"fd": "FD"})
    assert said[0].startswith("**latent_dim=10 vs latent_dim=100**, 3 seeds each: z10 is better on FD (75 vs 98")
    assert "z100 is better on recall" in said[0] and "Holm p" in said[0]
    tied = runs_table({10: [75, 85, 79], 100: [80, 76, 88]})
    tied_tests = comparison.compare(tied, comparison.pairs(tied, ["model.latent_dim"]))
    assert "no conclusion on fd" in comparison.sentences(tied_tests, tied, {})[0]
    single = runs_table({10: [75], 100: [88]})
    assert "one seed: no conclusion possible" in comparison.sentences(
        comparison.compare(single, comparison.pairs(single, ["model.latent_dim"])), single, {})[0]


def test_variants_are_compared_with_their_reference_whatever_they_change():
    table = runs_table({10: [75, 71], 100: [88, 85], 500: [80, 90]}, reference="z10")
    table["variant"] = table["configuration"]
    table["optim_g.lr"] = table["model.latent_dim"]  # two settings differ at once: still one question
    pairs = comparison.pairs(table, ["model.latent_dim", "optim_g.lr"])
    assert [(p.a, p.b, p.label) for p in pairs] == [("z100", "z10", "z100 vs z10 (reference)"),
                                                     ("z500", "z10", "z500 vs z10 (reference)")]


def test_a_pair_that_failed_to_learn_gets_no_verdict():
    """After a budget too short to learn anything both sides' recall is ~0: ranking them by FD
    would say nothing about the setting."""
    collapsed = runs_table({10: [462, 440], 100: [365, 370]}, recall=0.0)
    collapsed["classes"] = 3
    tests = comparison.compare(collapsed, comparison.pairs(collapsed, ["model.latent_dim"]))
    assert set(tests["verdict"]) == {"failed to learn"} and "p" not in tests
    said = comparison.sentences(tests, collapsed, {})[0]
    assert "both configurations failed to learn the data in this budget" in said and "train longer" in said
    assert "recall 0 < 0.05" in said and "3 of 10 classes covered" in said


def test_claims_are_answered_with_power():
    table = runs_table({10: [75, 71, 79], 100: [88, 85, 91]})
    declared = claims.parse([
        {"claim": "z=100 beats z=10", "source": "the main job", "predicts": {"better": "z100", "than": "z10", "score": "fd"}},
        {"claim": "z=10 no better than z=100", "predicts": {"no_better": "z10", "than": "z100", "score": "fd", "margin": 30}},
        {"claim": "same precision", "predicts": {"better": "z10", "than": "z100", "score": "precision"}},
    ], "s.yaml", ["z10", "z100"], {"fd", "precision"}, {"fd"})
    answers = claims.answer(declared, table, {}).set_index("claim")
    assert answers.loc["z=100 beats z=10", "verdict"] == "contradicted"  # z100's FD is higher: worse
    assert answers.loc["z=10 no better than z=100", "verdict"] == "supported"  # better by 13, well under 30
    assert answers.loc["same precision", "verdict"].startswith("not settled at 3 seeds")
    row = answers.loc["z=100 beats z=10"]
    assert row["p_holm"] >= row["p"] and row["detectable"] > 0 and row["seeds_needed"] >= 2
    said = claims.sentence(answers.reset_index().iloc[0], {"fd": "FD"})
    assert said.startswith("**z=100 beats z=10** (the main job): contradicted: FD 88")
    assert "80 % power" in said and "no difference" not in said


def test_a_claim_on_a_score_the_runs_lack_is_not_answerable():
    """Runs without FD (a folder too small for an evaluator): their FD claims are not
    answerable, which is not the same as too few finished runs."""
    table = runs_table({10: [75, 71], 100: [88, 85]}).assign(fd=np.nan)
    declared = claims.parse([
        {"claim": "z=100 beats z=10", "predicts": {"better": "z100", "than": "z10", "score": "fd"}},
        {"claim": "G loss shows progress", "predicts": {"relation": ["loss_g", "fd"], "across": "checkpoints",
                                                        "sign": "positive"}}], "s.yaml", ["z10", "z100"], {"fd"},
        {"fd", "loss_g"})
    losses = pd.DataFrame([{"configuration": "z10", "seed": s, "epoch": e, "loss_g": 1.0}
                           for s in (0, 1) for e in (1, 2, 3)])
    answers = claims.answer(declared, table, {"losses": losses, "quality": pd.DataFrame()})
    assert all(v.startswith("not answerable from these runs: they have no") for v in answers["verdict"]), answers
    unfinished = claims.answer(declared[:1], table.assign(status="running"), {})
    assert unfinished["verdict"][0] == "not settled at 0 seeds: too few finished runs to test"


def test_a_relation_across_checkpoints():
    """Lower G loss going with lower FD: Spearman within each run, the mean over runs against 0."""
    rows = [{"configuration": "z10", "seed": s, "epoch": e, "loss_g": 1 + e * (0.1 + 0.01 * s), "fd": 100 - 10 * e}
            for s in range(3) for e in range(1, 6)]
    curves = {"losses": pd.DataFrame(rows)[["configuration", "seed", "epoch", "loss_g"]],
              "quality": pd.DataFrame(rows)[["configuration", "seed", "epoch", "fd"]]}
    declared = claims.parse([{"claim": "a falling G loss shows progress",
                              "predicts": {"relation": ["loss_g", "fd"], "across": "checkpoints", "sign": "positive"}}],
                            "s.yaml", ["z10"], {"fd"}, {"fd", "loss_g"})
    answer = claims.answer(declared, runs_table({10: [1, 2, 3]}), curves).iloc[0]
    assert answer["verdict"] == "contradicted" and answer["diff"] == pytest.approx(-1.0)  # G loss rose, FD fell
    rows = [{"configuration": "z10", "seed": s, "epoch": e, "loss_g": [1, 3, 2, 4][e - 1] if s else e, "fd": e}
            for s in range(2) for e in range(1, 5)]  # correlations 1 and 0.8: a t-interval beyond 1
    curves = {"losses": pd.DataFrame(rows)[["configuration", "seed", "epoch", "loss_g"]],
              "quality": pd.DataFrame(rows)[["configuration", "seed", "epoch", "fd"]]}
    answer = claims.answer(declared, runs_table({10: [1, 2]}), curves).iloc[0]
    assert answer["diff"] == pytest.approx(0.9) and answer["low"] >= -1 and answer["high"] == 1  # cut to [-1, 1]


@pytest.mark.parametrize("claim, message", [
    ({"claim": "x", "predicts": {"better": "z7", "than": "z10", "score": "fd"}}, "'z7' is not a configuration"),
    ({"claim": "x", "predicts": {"better": "z100", "than": "z10", "score": "beauty"}}, "'beauty' is not a score"),
    ({"claim": "x", "predicts": {"no_better": "z100", "than": "z10", "score": "fd"}}, "margin must be a number > 0"),
    ({"claim": "x", "predicts": {"relation": ["loss_q", "fd"], "across": "checkpoints"}}, "'loss_q' is neither"),
    ({"claim": "x", "predicts": {"bigger": "z100"}}, "predicts must say better"),
    ({"predicts": {"better": "z100", "than": "z10", "score": "fd"}}, "must be a mapping with claim"),
])
def test_bad_claims_are_refused_before_any_work(tmp_path, claim, message):
    import yaml
    body = "grid:\n  model.latent_dim: [10, 100]\nseeds: [0, 1]\nclaims: " + yaml.safe_dump([claim], default_flow_style=True)
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, body))


def test_settings_changed_together_share_one_figure():
    """loss_comparison's lr1e-3 sets D's and G's rate, its MLPs their arch with more data: one
    figure for each group, named in its title, its ticks the values one per line; a setting of
    its own keeps its figure."""
    table = runs_table({10: [75, 71], 100: [88, 85], 50: [86, 90]})
    table["optim_d.lr"] = table["optim_g.lr"] = table["configuration"].map({"z10": 1e-3, "z100": 2e-4, "z50": 2e-4})
    table["mlp.g_hidden"] = table["configuration"].map({"z10": None, "z100": "[256, 512]", "z50": None})
    settings = ["model.latent_dim", "optim_d.lr", "mlp.g_hidden", "optim_g.lr"]
    groups = index.setting_groups(table, settings)
    assert groups == [["model.latent_dim"], ["optim_d.lr", "optim_g.lr"], ["mlp.g_hidden"]]
    fig = sweep_figures.scores_by_setting(table, groups[1])
    assert fig.axes[0].get_xlabel() == "" and fig.texts[0].get_text().startswith(
        "Scores by optim_d.lr / optim_g.lr:")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.0002\n0.0002", "0.001\n0.001"]
    assert [t.get_text() for t in sweep_figures.scores_by_setting(table, ["mlp.g_hidden"]).axes[0].get_xticklabels()] \
        == ["-", "[256, 512]"]


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
    # every seed a point, and the mean's interval is the table's t-interval, not a bootstrap
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) >= 6
    low, high = seed_stats.t_interval([75, 71, 79])[2:]
    spans = [(np.nanmin(line.get_ydata()), np.nanmax(line.get_ydata())) for line in ax.lines[1:]]  # with caps
    assert spans[0] == pytest.approx((low, high)), spans  # seaborn's bootstrap would give about (71, 79)
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


def test_settings_show_the_values_every_configuration_ran_with(tmp_path):
    """The reference's values too (no blank 'kind='), every setting some variant changes, and
    the variants' references, before any run."""
    from gan_core.orchestration.runner import _write_sweep_file
    from gan_core.reporting import index
    sweep = load_sweep(write_sweep(tmp_path, """variants:
  bce: {}
  lsgan: {loss.kind: mse}
  lr1e-3: {optim_g.lr: 1.0e-3, optim_d.lr: 1.0e-3}
seeds: [0, 1]
"""))
    (tmp_path / "reports").mkdir()
    _write_sweep_file(sweep, tmp_path / "reports")
    table = index.sweep_table(tmp_path / "reports")
    first = table.drop_duplicates("configuration").set_index("configuration")
    assert first.loc["bce", "loss.kind"] == "bce" and first.loc["lsgan", "loss.kind"] == "mse"
    assert first.loc["bce", "optim_g.lr"] == "0.0002" and first.loc["lr1e-3", "optim_d.lr"] == "0.001"
    assert list(first["reference"]) == ["", "bce", "bce"]
    pairs = comparison.pairs(table, index.settings_of(index.sweep_runs(tmp_path / "reports")))
    assert [p.label for p in pairs] == ["lsgan vs bce (reference)", "lr1e-3 vs bce (reference)"]
