"""Issue 33, "validated, not assumed": do evaluators trained from a folder rank generators as the shipped one does?

    nice python benchmarks/evaluator_validity.py [--work /tmp/evaluator_validity] [--data fashion-mnist digits]
        [--seeds 0 1 2] [--samples 5000] [--threads 1] [--size 28] [--figure docs/img/evaluator_validity.png]
        [--json docs/reference/evaluator_validity.json]

For each data set (Fashion-MNIST; scikit-learn's 8x8 digits) it writes the training split as PNGs
into two image folders under ``--work`` (never the repository): ``labelled/`` with one subfolder
per class, ``unlabelled/all/`` with the same files as one folder. Each gets its evaluator exactly
as a user's folder does: ``trained.load_trained`` with a config whose ``data.name`` is imagefolder
and ``data.root`` the folder (a classifier for the first, SimCLR for the second), at the recipe's
defaults, at ``--size`` (default 28, the data's own; 64 reads the PNGs resized to 64 px, as a
user's ``data.image_size: 64`` does, and upsamples every image the trained evaluators score alike:
the network of folders above 48 px, whose first convolution has stride 2). Then it scores
generators of varied quality with those two and with the shipped evaluator (``fashion-mnist-v3``,
``digits-v3``):

- the main job's model (params/quick.yaml), trained by the project's trainer for ``--seeds``,
  a snapshot after every epoch (digits: the epochs of ``--digits-epochs``);
- two poor early ones (the same recipe stopped after a few steps);
- two mode-dropping ones: the last seed-0 generator's samples kept only where the shipped
  classifier calls them one of 3 classes, or of 1 class;
- uniform noise.

Every score is FD (and KID, precision, recall) of ``n`` samples against ``n`` test images, with
``n = min(--samples, half the test split)``; the floors: ``n`` other, held-out test images, and
``n`` training images, against the same reference. Targets per trained evaluator: Spearman rank
correlation of its FD with the shipped evaluator's FD >= 0.9 over all generators; the held-out
floor below every generator's FD, noise above every other generator's. Prints the table, writes
``WORK/evaluator_validity.json`` and the figure (trained FD against shipped FD, log axes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from gan_core.config import Config, from_dict, load  # noqa: E402
from gan_core.data import load_data  # noqa: E402
from gan_core.evaluation import trained  # noqa: E402
from gan_core.evaluation.evaluator import features_and_classes, load_evaluator, to_evaluator_input  # noqa: E402
from gan_core.evaluation.run import sample_images  # noqa: E402
from gan_core.evaluation.scores import feature_scores  # noqa: E402
from gan_core.models import load_family  # noqa: E402
from gan_core.rundir import RunDir  # noqa: E402
from gan_core.training.trainer import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NATIVE = {"fashion-mnist": 28, "digits": 8}  # the size the PNGs are written at
SIZE = 28  # the generators' size, and the image_size of the folders' configs (a DCGAN builds 28 px)
EARLY_STEPS = {"fashion-mnist": (30, 150), "digits": (20, 60)}  # the poor early generators' training steps
DROP_CLASSES = {3: (1, 7, 8), 1: (8,)}  # mode dropping: the classes kept (Fashion-MNIST: trouser, sneaker, bag)
EVALUATORS = ("shipped", "labelled", "unlabelled")
TARGET_SPEARMAN = 0.9


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ---- the data as image folders -------------------------------------------------------------------
def export_folders(name: str, work: Path) -> tuple[Path, Path]:
    """The training split of ``name`` as PNGs: WORK/NAME/labelled/CLASS/i.png, and the same files
    (hard links) as WORK/NAME/unlabelled/all/i.png. Written once (a marker beside the folders)."""
    labelled, unlabelled, done = work / name / "labelled", work / name / "unlabelled", work / name / "exported"
    if done.exists():
        return labelled, unlabelled
    # an MLP config only so that the digits load at their native 8 px (the DCGAN rule wants 28)
    data = load_data(from_dict({"model": {"arch": "mlp"}, "data": {"name": name, "image_size": NATIVE[name]}}))
    pixels = (data.images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)[:, 0]).numpy()  # (N, H, W)
    folders = [f"{i:02d}_{c.replace('/', '-')}" for i, c in enumerate(data.classes)]
    (unlabelled / "all").mkdir(parents=True, exist_ok=True)
    for folder in folders:
        (labelled / folder).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(pixels, data.labels.tolist())):
        path = labelled / folders[label] / f"{i:05d}.png"
        Image.fromarray(image, mode="L").save(path)
        os.link(path, unlabelled / "all" / f"{i:05d}.png")
    done.write_text(f"{len(pixels)} images\n")
    return labelled, unlabelled


def folder_config(root: Path, cache: Path, size: int) -> Config:
    """What a user writes for their folder: imagefolder, its root, a size; the rest default."""
    return from_dict({"data": {"name": "imagefolder", "root": str(root), "image_size": size},
                      "eval": {"cache_dir": str(cache)}}, "evaluator_validity")


# ---- generators ----------------------------------------------------------------------------------
def main_config(name: str, threads: int, **overrides: Any) -> Config:
    """params/quick.yaml (the main job's model), on ``name``, with ``overrides`` (dotted keys)."""
    data = {} if name == "fashion-mnist" else {"data.name": name}
    return load(REPO / "params" / "quick.yaml", {"train.threads": threads, **data, **overrides})


def train_runs(name: str, args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Train (or find trained) the main-job generators and the early ones; one entry per generator."""
    runs, found = args.work / "runs", []
    epochs = args.epochs if name == "fashion-mnist" else max(args.digits_epochs)
    for seed in args.seeds:
        run = runs / f"{name}-s{seed}"
        train(main_config(name, args.threads, **{"train.seed": seed, "train.epochs": epochs}), run,
              progress=False, log=log)
        kept = range(1, epochs + 1) if name == "fashion-mnist" else args.digits_epochs
        found += [{"name": f"s{seed} epoch {e}", "kind": "main", "snapshot": RunDir(run).snapshot(e)} for e in kept]
    for steps in EARLY_STEPS[name]:
        run = runs / f"{name}-early{steps}"
        train(main_config(name, args.threads, **{"train.seed": 0, "train.steps": steps}), run, progress=False, log=log)
        found.append({"name": f"early ({steps} steps)", "kind": "early", "snapshot": RunDir(run).snapshots()[-1]})
    return found


def generator_samples(entry: dict[str, Any], n: int) -> torch.Tensor:
    family, config = load_family(entry["snapshot"])
    return sample_images(family, n, config.train.seed + 12345)[0]


def mode_dropped(snapshot: Path, keep: tuple[int, ...], n: int, shipped: Any, config: Config) -> torch.Tensor:
    """``n`` samples of a generator that the shipped classifier calls one of the classes ``keep``:
    a generator that has dropped the other modes."""
    family, run_config = load_family(snapshot)
    kept, seed = [], run_config.train.seed + 777
    while sum(len(k) for k in kept) < n:
        images = sample_images(family, 4 * n, seed)[0]
        classes = features_and_classes(shipped, to_evaluator_input(images, config))[1]
        kept.append(images[torch.isin(classes, torch.tensor(keep))])
        seed += 1
    return torch.cat(kept)[:n]


# ---- scoring -------------------------------------------------------------------------------------
def feature_fns(name: str, args: argparse.Namespace, log: Callable[[str], None]) -> tuple[dict, dict, Any, Config]:
    """Per evaluator, images (N, 1, 28, 28) in [-1, 1] -> features (N, 128); what identifies each;
    the shipped network (for mode dropping) and the data's config."""
    config = from_dict({"data": {"name": name}}, "evaluator_validity")
    shipped, shipped_info = load_evaluator(config, log)
    fns = {"shipped": lambda x: features_and_classes(shipped, to_evaluator_input(x, config))[0]}
    infos = {"shipped": {"version": shipped_info["version"], "held_out": shipped_info["held_out"],
                         "held_out_name": "test accuracy"}}
    for kind, root in zip(("labelled", "unlabelled"), export_folders(name, args.work)):
        start = time.perf_counter()
        folder = folder_config(root, args.work / "cache", args.size)
        model, info = trained.load_trained(folder, log)
        # the folder's size and channels (RGB unless data.channels says 1), as a run's samples get them
        fns[kind] = lambda x, model=model, folder=folder: features_and_classes(model, to_evaluator_input(x, folder))[0]
        infos[kind] = {"version": info["version"], "source": info["source"], "held_out": info["held_out"],
                       "seconds_to_load_or_train": round(time.perf_counter() - start, 1)}
    return fns, infos, shipped, config


def score_all(sets: dict[str, torch.Tensor], reference: torch.Tensor, fns: dict, config: Config) -> dict[str, dict]:
    """Per evaluator, per image set: FD, KID, precision, recall against the reference images."""
    scores = {}
    for kind, fn in fns.items():
        real = fn(reference)
        scores[kind] = {}
        for label, images in sets.items():
            s = feature_scores(real, fn(images), config.eval, detail=False)
            scores[kind][label] = {k: float(s[k]) for k in ("fd", "kid", "precision", "recall")}
    return scores


def checks(scores: dict[str, dict], generators: list[str]) -> dict[str, dict]:
    """Per evaluator: Spearman with the shipped FD (all generators; without noise), floor and noise checks."""
    shipped = [scores["shipped"][g]["fd"] for g in generators]
    found = {}
    for kind in EVALUATORS:
        fd = [scores[kind][g]["fd"] for g in generators]
        but_noise = [g for g in generators if g != "noise"]
        worst = max(scores[kind][g]["fd"] for g in but_noise)
        best = min(scores[kind][g]["fd"] for g in but_noise)
        found[kind] = {
            "spearman": float(spearmanr(fd, shipped).statistic),
            "spearman_without_noise": float(spearmanr([scores[kind][g]["fd"] for g in but_noise],
                                                      [scores["shipped"][g]["fd"] for g in but_noise]).statistic),
            "floor_heldout": scores[kind]["floor (held-out real)"]["fd"],
            "floor_train": scores[kind]["floor (train real)"]["fd"],
            "best_generator": best, "worst_generator": worst, "noise": scores[kind]["noise"]["fd"],
            "floor_below_all": scores[kind]["floor (held-out real)"]["fd"] < best,
            "noise_above_all": scores[kind]["noise"]["fd"] > worst}
        found[kind]["meets_targets"] = (found[kind]["spearman"] >= TARGET_SPEARMAN and found[kind]["floor_below_all"]
                                        and found[kind]["noise_above_all"])
    return found


def validate(name: str, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """The whole check for one data set."""
    start = time.perf_counter()
    fns, infos, shipped, config = feature_fns(name, args, log)
    test = load_data(from_dict({"data": {"name": name, "split": "test"}}, "evaluator_validity")).images
    train_images = load_data(from_dict({"data": {"name": name}}, "evaluator_validity"))
    n = min(args.samples, len(test) // 2)
    entries = train_runs(name, args, log)
    sets = {e["name"]: generator_samples(e, n) for e in entries}
    last = next(e["snapshot"] for e in reversed(entries) if e["name"].startswith(f"s{args.seeds[0]} "))
    for count, keep in DROP_CLASSES.items():
        sets[f"mode-dropping ({count} class{'es' if count > 1 else ''})"] = mode_dropped(last, keep, n, shipped, config)
    sets["noise"] = torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    generators = list(sets)
    kinds = {e["name"]: e["kind"] for e in entries} | {"noise": "noise"}
    kinds |= {g: "mode-dropping" for g in generators if g.startswith("mode")}
    sets["floor (held-out real)"] = test[n:2 * n]
    sets["floor (train real)"] = train_images.sample(n, seed=0)
    scores = score_all(sets, test[:n], fns, config)
    return {"data": name, "size": args.size, "n": n, "evaluators": infos, "generators": generators, "kinds": kinds,
            "scores": scores, "checks": checks(scores, generators), "seconds": round(time.perf_counter() - start, 1)}


# ---- output --------------------------------------------------------------------------------------
def table(result: dict[str, Any]) -> str:
    """Markdown: one row per generator and floor, FD per evaluator; then the checks per evaluator."""
    at = f" at {result['size']} px" if result.get("size", SIZE) != SIZE else ""
    s, names = result["scores"], {"shipped": result["evaluators"]["shipped"]["version"],
                                  "labelled": f"trained, labelled{at}", "unlabelled": f"trained, SimCLR{at}"}
    lines = [f"| {result['data']}, n = {result['n']:,} | " + " | ".join(f"FD {names[k]}" for k in EVALUATORS) + " |",
             "|---|" + "---:|" * len(EVALUATORS)]
    for g in [*result["generators"], "floor (held-out real)", "floor (train real)"]:
        lines.append(f"| {g} | " + " | ".join(f"{s[k][g]['fd']:.3g}" for k in EVALUATORS) + " |")
    lines += ["", "| check | " + " | ".join(names[k] for k in EVALUATORS) + " |", "|---|" + "---|" * len(EVALUATORS)]
    c, e = result["checks"], result["evaluators"]
    rows = {"held-out figure": lambda k: f"{e[k]['held_out']:.1%}",
            f"Spearman with shipped FD, {len(result['generators'])} generators (target >= {TARGET_SPEARMAN})":
                lambda k: f"{c[k]['spearman']:.3f}",
            "Spearman without noise": lambda k: f"{c[k]['spearman_without_noise']:.3f}",
            "held-out floor below every generator":
                lambda k: verdict(c[k]["floor_below_all"], c[k]["floor_heldout"], "<", ">=", c[k]["best_generator"]),
            "noise above every generator":
                lambda k: verdict(c[k]["noise_above_all"], c[k]["noise"], ">", "<=", c[k]["worst_generator"])}
    for label, fn in rows.items():
        lines.append(f"| {label} | " + " | ".join(fn(k) for k in EVALUATORS) + " |")
    return "\n".join(lines)


def verdict(ok: bool, a: float, holds: str, fails: str, b: float) -> str:
    return f"yes ({a:.3g} {holds} {b:.3g})" if ok else f"NO ({a:.3g} {fails} {b:.3g})"


def figure(results: list[dict[str, Any]], path: Path) -> None:
    """Trained-evaluator FD against shipped FD, one panel per data set and trained evaluator, log axes."""
    colours = {"main": "tab:blue", "early": "tab:orange", "mode-dropping": "tab:red", "noise": "black"}
    fig, axes = plt.subplots(len(results), 2, figsize=(9, 4 * len(results)), squeeze=False)
    for row, result in zip(axes, results):
        s = result["scores"]
        for ax, kind in zip(row, ("labelled", "unlabelled")):
            for group, colour in colours.items():
                gens = [g for g in result["generators"] if result["kinds"][g] == group]
                ax.scatter([s["shipped"][g]["fd"] for g in gens], [s[kind][g]["fd"] for g in gens], c=colour,
                           label=f"{group} ({len(gens)})", s=25)
            floor = "floor (held-out real)"
            ax.scatter([s["shipped"][floor]["fd"]], [s[kind][floor]["fd"]], marker="*", s=120, c="tab:green",
                       label="held-out real (floor)")
            ax.set(xscale="log", yscale="log", xlabel=f"FD, shipped {result['evaluators']['shipped']['version']}",
                   ylabel=f"FD, trained {'classifier' if kind == 'labelled' else 'SimCLR'}",
                   title=f"{result['data']} as {'class folders' if kind == 'labelled' else 'one folder'}"
                         f"{'' if result.get('size', SIZE) == SIZE else ' at %d px' % result['size']}\n"
                         f"Spearman {result['checks'][kind]['spearman']:.2f} over {len(result['generators'])} "
                         f"generators, n = {result['n']:,}")
            ax.grid(True, which="both", alpha=0.3)
            ax.title.set_fontsize(10)
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/evaluator_validity"),
                    help="the image folders, generator runs and evaluator cache (not in the repository)")
    ap.add_argument("--data", nargs="+", default=["fashion-mnist", "digits"], choices=list(NATIVE))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3, help="Fashion-MNIST: epochs of the main job (quick.yaml's 3)")
    ap.add_argument("--digits-epochs", type=int, nargs="+", default=[1, 3, 10, 30], help="digits: the snapshots scored")
    ap.add_argument("--samples", type=int, default=5000, help="samples per score (capped at half the test split)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: least harm on a shared machine)")
    ap.add_argument("--size", type=int, default=SIZE,
                    help="the image_size of the folders' configs (28: the data's own; 64: resized, stride 2)")
    ap.add_argument("--figure", type=Path, default=None, help="default WORK/evaluator_validity[-SIZEpx].png")
    ap.add_argument("--json", type=Path, default=None, help="default WORK/evaluator_validity[-SIZEpx].json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    log(f"threads {torch.get_num_threads()}, cores {os.cpu_count()}; {uptime()}")
    results = []
    for name in args.data:
        result = validate(name, args, log)
        result["load"] = uptime()
        results.append(result)
        log(f"\n{table(result)}\n({result['seconds']:.0f} s; {result['load']})\n")
    stem = "evaluator_validity" + ("" if args.size == SIZE else f"-{args.size}px")
    out, drawn = args.json or args.work / f"{stem}.json", args.figure or args.work / f"{stem}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    figure(results, drawn)
    log(f"wrote {out} and {drawn}")


if __name__ == "__main__":
    main()
