"""The sweep's index: one row per run (what differs, status, figures, final grid, links)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import yaml
from pandas.io.formats.style import Styler

from .. import config as config_lib
from .. import evaluators
from ..config import RUNTIME_KEYS
from ..analysis import comparison
from ..analysis.losses import load_log, per_epoch
from ..rundir import RunDir, SweepDir
from .html import facts_table, provenance
from .tables import label, number, readable

HIDDEN_INDEX_COLUMNS = ("error", "images_per_s", "kid", "fd_floor", "variant", "reference", "classes_in_data",
                        "density", "class_kl", "loss_spread", "fd_spread", "fd_over_training")  # kept in summary.csv


def sweep_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The runs in sweep order from sweep.json (name, overrides, configuration, seed, variant,
    reference), each with the value it ran with of every setting the sweep varies (from its own
    config.yaml; sweep.json's where it has not run yet), else every sub-folder holding a config
    (each its own configuration; the settings that differ between their config.yaml files)."""
    info = SweepDir(sweep_dir).read_sweep()
    configs = {p.parent.name: config_lib.flatten(yaml.safe_load(p.read_text()) or {})
               for p in sorted(Path(sweep_dir).glob("*/config.yaml"))}
    if info.get("runs"):
        varied = info.get("varied", [])
        return [{"configuration": r["name"], "seed": None, "variant": "", "reference": "", **r,
                 "settings": {k: configs.get(r["name"], r.get("settings", {})).get(k) for k in varied}}
                for r in info["runs"]]
    keys = sorted({k for c in configs.values() for k in c}, key=str)
    varied = [k for k in keys if k not in RUNTIME_KEYS and len({json.dumps(c.get(k)) for c in configs.values()}) > 1]
    return [{"name": name, "overrides": {}, "configuration": name, "seed": None, "variant": "", "reference": "",
             "settings": {k: c.get(k) for k in varied}} for name, c in configs.items()]


def settings_of(runs: list[dict[str, Any]]) -> list[str]:
    """The settings the sweep varies between configurations (the seed aside), in order."""
    return list(dict.fromkeys(k for r in runs for k in r["settings"] if k != "train.seed"))


def setting_groups(table: pd.DataFrame, settings: list[str]) -> list[list[str]]:
    """``settings`` grouped by how they split the runs of ``table``: settings that change
    together (D's and G's learning rate, an MLP's data and epochs with its arch) group the
    configurations alike, so one figure shows them all."""
    groups: dict[tuple, list[str]] = {}
    for setting in settings:
        values = table[setting].map(repr).tolist()  # None and NaN (another family's key) are values too
        groups.setdefault(tuple(values.index(v) for v in values), []).append(setting)
    return list(groups.values())


def sweep_table(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per run: its configuration, seed, variant, reference and the value it ran with
    of each varied setting, status, times and figures (scores, loss figures, stability)."""
    if not Path(sweep_dir).is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep folder (give the notebook sweep_dir = a folder "
                                "of run folders, e.g. reports/quick)")
    runs = sweep_runs(sweep_dir)
    settings = settings_of(runs)
    rows = []
    for info in runs:
        run = RunDir(Path(sweep_dir) / info["name"])
        status = run.read_status()
        metrics = run.read_metrics()
        training = metrics.get("training", {})
        overrides = {k: v for k, v in info["overrides"].items() if k != "train.seed"}
        rows.append({
            "run": info["name"], "configuration": info["configuration"], "seed": info["seed"],
            "variant": info["variant"], "reference": info["reference"],
            "differs": ", ".join(f"{k}={v}" for k, v in overrides.items()),
            **{k: setting_text(info["settings"].get(k)) for k in settings},
            "status": status.get("status", "ok" if training else "not run"),
            "training_s": training.get("seconds"), "reports_s": status.get("reports_s"), "epochs": training.get("epochs"),
            **loss_figures(training), "images_per_s": training.get("images_per_s"),
            **_scores(metrics.get("evaluation", {})), **stability(metrics),
            "error": status.get("error", ""),
        })
    table = pd.DataFrame(rows)
    if "fd" in table and table["fd"].notna().any():  # rank by the evaluator's Frechet distance
        table.insert(1, "rank", table["fd"].rank(method="min").astype("Int64"))
    return table


def setting_text(value: Any) -> str:
    """A setting's value as the tables show it: 10, 0.0002, mse, [0.9, 0.999]."""
    return json.dumps(value) if isinstance(value, (list, dict)) else "" if value is None else f"{value:g}" \
        if isinstance(value, float) else str(value)


def stability(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scores of stability a claim may name: ``loss_spread``, the relative spread of the
    losses over the last quarter of the log (std / mean |loss|, averaged over D and G: losses of
    different kinds compare); ``fd_spread``, the std of FD over the checkpoints of the second
    half of training; ``fd_over_training``, the mean FD over all saved checkpoints (lower: good
    sooner)."""
    out: dict[str, Any] = {}
    stats = metrics.get("loss_analysis", {})
    spreads = [stats[f"std_{k}"] / abs(stats[f"mean_{k}"]) for k in ("loss_d", "loss_g", "loss")
               if f"std_{k}" in stats and stats.get(f"mean_{k}")]
    if spreads:
        out["loss_spread"] = float(sum(spreads) / len(spreads))
    points = [p for p in metrics.get("evaluation", {}).get("over_training", []) if not p["floor"]]
    if points:
        out["fd_over_training"] = float(sum(p["fd"] for p in points) / len(points))
        late = [p["fd"] for p in points if p["epoch"] > max(q["epoch"] for q in points) / 2]
        if len(late) >= 2:
            out["fd_spread"] = float(pd.Series(late).std())
    return out


def loss_figures(training: dict[str, Any]) -> dict[str, Any]:
    """A run's loss figures (metrics.json's training section): the mean over the last epoch
    (``final_``), then over all of training (``mean_``), of each loss the family logs."""
    keys = sorted((k for k in training if k.startswith(("final_", "mean_"))), key=lambda k: not k.startswith("final_"))
    return {k: training[k] for k in keys}


def _scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    if not evaluation.get("available"):
        return {}
    final, floor = evaluation["final"], evaluation["floor"]
    return {"fd": final["fd"], "fd_floor": floor["fd"], "kid": final["kid"], "precision": final["precision"],
            "recall": final["recall"], "coverage": final["coverage"], "classes": final.get("classes_covered"),
            "classes_in_data": final.get("classes_in_data"), "density": final["density"], "class_kl": final.get("class_kl"),
            **({"conditional_accuracy": final["conditional_accuracy"]} if "conditional_accuracy" in final else {})}


def index_html(table: pd.DataFrame, sweep_dir: str | Path) -> str:
    """The sweep table as HTML: each run's name with links to its reports, its final grid, the
    swept settings, status and scores (sortable by any column)."""
    sweep_dir = Path(sweep_dir)
    floor = ""
    if "fd_floor" in table and table["fd_floor"].notna().any():
        floor = (f"<p>Ranked by FD in the evaluator's feature space (lower is better); real training "
                 f"images score {table['fd_floor'].dropna().iloc[0]:.3g} (the floor). A rank is no verdict: "
                 "whether two configurations differ beyond seed noise is said under 'Configurations compared "
                 "over seeds' (with seeds). Click a header to sort; KID, images/s and the rest are in "
                 "summary.csv.</p>")
        table = table.sort_values("rank", kind="stable")
    settings = [c for c in table if "." in c]  # the swept settings, each its own column
    hidden = [c for c in table if c in HIDDEN_INDEX_COLUMNS or c.startswith("mean_") or c.startswith("final_acc")]
    if settings and all(table["differs"].str.count("=") <= len(settings)):
        hidden.append("differs")
    if "configuration" in table and (table["configuration"] == table["run"]).all():
        hidden.append("configuration")  # no seeds: every run is its own configuration
    shown = table.drop(columns=hidden).dropna(axis=1, how="all")
    shown = shown.apply(lambda col: col.map(lambda v: html.escape(v) if isinstance(v, str) else v))  # names, values
    # the reports' links under the run's name and the grid beside it: they must not scroll away
    shown["run"] = [f"<b>{html.escape(name)}</b><br><small>{_links(sweep_dir / name)}</small>" for name in table["run"]]
    shown.insert(1, "final grid", [_thumbnail(RunDir(sweep_dir / name)) for name in table["run"]])
    shown["status"] = [_status_cell(sweep_dir / name, s, e) for name, s, e
                       in zip(table["run"], table["status"], table["error"])]
    for column in ("epochs", "seed"):
        if column in shown:
            shown[column] = shown[column].astype("Int64")
    names = {**log_labels(sweep_dir, table), **comparison.setting_names(settings)}  # final_loss_d -> D loss (last epoch)
    shown = shown.rename(columns=lambda c: label(c, names))  # model.latent_dim -> latent_dim
    body = shown.to_html(escape=False, index=False, na_rep="", float_format=number, classes="sortable")
    return f"{floor}<div style='overflow-x:auto'>{body}</div>{SORTABLE}"


# click a column's header to sort the table by it (again: the other way); inline, no library
SORTABLE = """<script>
document.querySelectorAll("table.sortable th").forEach((th, i) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
  const value = r => { const t = r.cells[i].innerText.trim(), n = parseFloat(t.replace(/,/g, ""));
                       return isNaN(n) ? t : n; };
  const dir = th.dataset.dir = th.dataset.dir === "asc" ? "desc" : "asc";
  rows.sort((a, b) => (value(a) > value(b) ? 1 : value(a) < value(b) ? -1 : 0) * (dir === "asc" ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
  th.style.cursor = "pointer";
}));
document.querySelectorAll("table.sortable th").forEach(th => { th.style.cursor = "pointer"; th.title = "sort"; });
</script>"""


def log_labels(sweep_dir: str | Path, table: pd.DataFrame) -> dict[str, str]:
    """The labels of every logged column of the sweep's runs (``LogSchema.labels``, from each
    run's family.json), e.g. loss_d: D loss."""
    runs = [RunDir(Path(sweep_dir) / name) for name in table["run"]]
    return {k: v for run in runs if run.family_file.exists() for k, v in run.schema().labels.items()}


def configurations_table(configurations: pd.DataFrame, runs: pd.DataFrame) -> Styler:
    """``comparison.per_configuration`` for the page, best FD first: seeds, FD mean, std and
    interval, the other scores' means, and whether each is distinguishable from the next."""
    shown = configurations.set_index("configuration")
    if "fd_mean" in shown:
        shown = shown.sort_values("fd_mean").join(comparison.rank_with_ties(configurations, runs))
    frame = shown[["n", "seeds"]].copy()
    for score in ("fd", "precision", "recall", "coverage"):
        if f"{score}_mean" in shown:
            frame[f"{label(score)} (mean)"] = shown[f"{score}_mean"]
        if score == "fd" and "fd_mean" in shown:
            frame["FD std"] = shown["fd_std"]
            frame["FD 95 % interval"] = [f"[{number(low)}, {number(high)}]" if pd.notna(low) else "-"
                                         for low, high in zip(shown["fd_ci_low"], shown["fd_ci_high"])]
    if "vs next" in shown:
        frame["vs next"] = shown["vs next"].fillna("")
    return readable(frame)


def _thumbnail(run: RunDir, width: int = 120) -> str:
    grids = run.sample_grids()
    if not grids:
        return ""
    data = base64.b64encode(grids[-1].read_bytes()).decode()
    return (f"<img src='data:image/png;base64,{data}' style='width:{width}px;max-width:none' "
            f"alt='final grid of {html.escape(run.root.name)}' title='{html.escape(grids[-1].name)}'>")


def _links(run_dir: Path) -> str:
    pages = RunDir(run_dir).pages()
    return "<br>".join(f"<a href='{quote(run_dir.name)}/{quote(p.name)}' style='white-space:nowrap'>"
                       f"{html.escape(p.stem.split('_', 1)[1].replace('_', ' '))}</a>" for p in pages)


def _status_cell(run_dir: Path, status: str, error: str) -> str:
    """A failed run's cell: where it failed (a step of its work, a notebook: linked to its error
    cell) and why."""
    if status != "failed":
        return status
    info = RunDir(run_dir).read_status()
    where = html.escape(str(info.get("failed_step", "")))
    failed = "<b>failed</b>"
    if info.get("failed_link"):
        failed = (f"<a href='{quote(run_dir.name)}/{quote(str(info['failed_link']), safe='#')}' "
                  f"style='color:#b00'>{failed}</a>")
    return f"<span style='color:#b00'>{failed}</span> in {where}<br><small>{html.escape(error)}</small>"


def sweep_header_html(sweep_dir: str | Path) -> str:
    """Title and provenance of a sweep's index page."""
    info = SweepDir(sweep_dir).read_sweep()
    configs = sorted(Path(sweep_dir).glob("*/config.yaml"))
    facts = {"sweep file": info.get("sweep", "-"), "base config": info.get("base", "-"),
             "folder": Path(sweep_dir).name,  # no path of the machine that built it
             **({"evaluator": evaluators.described(config_lib.load(configs[0]))} if configs else {}), **provenance()}
    return facts_table(facts)


def seed_curves(sweep_dir: str | Path, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Long tables of the finished runs for figures with seeds and for claims: ``losses``
    (configuration, seed, epoch, the mean per epoch of each logged column), ``quality``
    (configuration, seed, epoch, the scores of each saved checkpoint) and ``classes``
    (configuration, seed, class, share)."""
    losses, quality, classes = [], [], []
    for row in table[table["status"] == "ok"].itertuples():
        run = RunDir(Path(sweep_dir) / row.run)
        who = {"configuration": row.configuration, "seed": row.seed}
        if run.log.exists() and run.family_file.exists():
            schema = run.schema()
            epochs = per_epoch(load_log(run, schema))[list(schema.columns)].reset_index()
            losses.append(epochs.assign(**who))
        evaluation = run.read_metrics().get("evaluation", {})
        for point in evaluation.get("over_training", []):
            if not point["floor"]:
                quality.append({**who, **{k: v for k, v in point.items() if k != "floor"}})
        for name, share in evaluation.get("final", {}).get("class_histogram", {}).items():
            classes.append({**who, "class": name, "share": share})
    return {"losses": pd.concat(losses, ignore_index=True) if losses else pd.DataFrame(),
            "quality": pd.DataFrame(quality), "classes": pd.DataFrame(classes)}


def durations_table(sweep_dir: str | Path, table: pd.DataFrame) -> pd.DataFrame:
    """Seconds per step of each run's last invocation (status.json: evaluation, loss statistics,
    each notebook), its training over all invocations (metrics.json; a resumed run trained in
    several), its reports' time (all of its last invocation but the training: process starts,
    scores, notebooks, pages), and the share of the two outside training."""
    rows = {}
    for name in table["run"]:
        run = RunDir(Path(sweep_dir) / name)
        status = run.read_status()
        seconds, reports = status.get("step_s", {}), status.get("reports_s")
        training = run.read_metrics().get("training", {}).get("seconds")
        if not seconds or reports is None or not training:
            continue
        rows[name] = {**{k: v for k, v in seconds.items() if k != "training"}, "training": training,
                      "reports": reports, "outside training": f"{reports / (reports + training):.0%}"}
    return pd.DataFrame.from_dict(rows, orient="index")
