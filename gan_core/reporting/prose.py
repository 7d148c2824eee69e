"""What the figures say, in sentences: the losses of a run and its scores. What a family's
losses mean beyond trends and spikes (who wins in a GAN) is the family's own reading
(``families.Family.reading``); nothing here branches on the family."""
from __future__ import annotations

from typing import Any

from .. import families
from ..evaluators import COVERED_SHARE, KID_NO_SPREAD
from ..families import LogSchema

MIN_ROWS = 20  # fewer log rows than this: too short to speak of trends
RISE_REL, RISE_NOISE = 0.2, 1.0  # a steady rise: fitted rise > 20 % of the level and > 1 std of the residuals
SWING_REL = 0.15  # smoothed loss wandering by more than 15 % of its level: oscillation


def loss_reading(stats: dict[str, float], schema: LogSchema, config: Any) -> list[str]:
    """Short sentences that interpret ``analysis.losses.loss_stats`` of a run whose log has
    ``schema``, trained with ``config`` (its family reads what is its own); thresholds are the
    constants atop this module."""
    family = families.family_of(config.model.arch)
    share = f"the last {stats['tail']:.0%} of steps"
    said = [f"the log holds {stats['nonfinite']} rows of non-finite losses: training diverged"] \
        if stats["nonfinite"] else []
    if stats["rows"] < MIN_ROWS:
        return said + [f"only {stats['rows']} log rows: too short to judge trends "
                       "(log more often or train longer)"]
    said += family.reading(stats, schema, config) + _trend_sentences(stats, share, schema, family, config)
    spikes = {key: stats[f"spikes_{key}"] for key in schema.losses if stats.get(f"spikes_{key}")}
    if spikes:
        counts = " and ".join(f"{n} in {schema.label(key)}" for key, n in spikes.items())
        said.append(f"spikes: {counts} (beyond {stats['spike_k']:g} robust std of the rolling median): "
                    "unstable updates")
    return said or [family.steady(share)]


def _trend_sentences(stats: dict[str, float], share: str, schema: LogSchema, family: families.Family,
                     config: Any) -> list[str]:
    said = []
    for key in schema.losses:
        level, rise = max(abs(stats[f"mean_{key}"]), 0.1), stats[f"rise_{key}"]
        if abs(rise) > RISE_REL * level and abs(rise) > RISE_NOISE * stats[f"noise_{key}"]:
            way = "rising" if rise > 0 else "falling"
            said.append(f"{schema.label(key)} {way} steadily ({rise:+.2f} over {share})"
                        + family.trend_meaning(key, rise, config))
    swinging = [schema.label(key) for key in sorted(schema.losses)
                if stats[f"swing_{key}"] > SWING_REL * max(abs(stats[f"mean_{key}"]), 0.1)]
    if swinging:
        said.append(f"losses oscillate without settling ({' and '.join(swinging)}, smoothed, "
                    f"swing by more than {SWING_REL:.0%} of their level over {share})")
    return said


def _seeds_sentence(fds: list[float]) -> str:
    if len(fds) >= 2:
        spread = f"the {len(fds)} seeds of this configuration finished so far range from {min(fds):.1f} to {max(fds):.1f}"
    else:
        spread = "the sweep's index shows the spread over its seeds"
    return ("That interval is the sampling noise of these samples only: another seed of the same configuration "
            f"moves FD by more ({spread}), so compare configurations over seeds, never by one run.")


def _interval(scores: dict[str, Any], key: str) -> str:
    low_high = scores.get(f"{key}_ci")
    return f" [{low_high[0]:.2f}, {low_high[1]:.2f}]" if low_high else ""


def score_reading(result: dict[str, Any], seed_fds: list[float] | None = None) -> list[str]:
    """Short sentences on what the scores say, for the report; ``seed_fds``: the FDs of the
    finished seeds of the run's configuration (its own among them), when it is one of several."""
    if not result.get("available"):
        return [result.get("reason", "no scores")]
    final, floor, name = result["final"], result["floor"], result["name"]
    interval = (f" (95 % interval {final['fd_ci'][0]:.2f} to {final['fd_ci'][1]:.2f} from the sampling noise of "
                f"{final['samples']:,} samples)" if "fd_ci" in final else "")
    lines = [f"{name}: {final['fd']:.2f}{interval}, against {floor['fd']:.2f} for real training images "
             f"(the floor); lower is better.", _seeds_sentence(seed_fds or [])]
    lines.append(f"Precision {final['precision']:.2f}{_interval(final, 'precision')} (floor {floor['precision']:.2f}): "
                 f"the share of samples "
                 f"that fall on the real data's manifold. Recall {final['recall']:.2f} "
                 f"(floor {floor['recall']:.2f}): the share of the real variety the samples reach.")
    if "classes_covered" in final:
        lines += _class_sentences(final)
    else:
        lines.append(result.get("note", "No class scores."))
    spread = (f" ± {final['kid_std']:.2g} over subsets" if final["kid_std"] > KID_NO_SPREAD
              else " (the subsets hold every sample: no spread to show)")
    lines.append(f"KID {final['kid']:.3g}{spread} (floor {floor['kid']:.2g}): on the "
                 "evaluator's raw features, so not comparable with published KID; it is unbiased, so "
                 "identical distributions can score slightly below 0.")
    if "conditional_accuracy" in final:
        per_class = final["conditional_accuracy_per_class"]
        worst = min(per_class, key=per_class.get)
        lines.append(f"Conditional accuracy {final['conditional_accuracy']:.2f} (chance {1 / len(per_class):.2f}): "
                     f"the share of samples the evaluator puts in the class they were asked for; lowest for "
                     f"{worst} ({per_class[worst]:.2f}).")
    if best := result.get("best_checkpoint"):
        lines.append(f"Best saved checkpoint by {name}: epoch {best['epoch']} ({best['fd']:.2f} on the "
                     f"smaller per-checkpoint sample), {best['path']}.")
    if "classes_covered" in final and final["classes_covered"] <= final["classes_in_data"] // 2:
        lines.append("Half of the classes or more are missing: mode collapse.")
    elif final["recall"] < 0.5 * floor["recall"]:
        lines.append("Recall is under half the floor's: the samples miss much of the data's variety.")
    return lines


def _class_sentences(final: dict[str, Any]) -> list[str]:
    """What the class histogram of a run's samples says: classes covered, favoured, outside."""
    lines = []
    covered, total = final["classes_covered"], final["classes_in_data"]
    favoured = [c for c, share in final["class_histogram"].items()
                if share > 1.5 * final["data_histogram"].get(c, 0) and share >= COVERED_SHARE]
    lines.append(f"The generator covers {covered} of the {total} classes it was trained on (KL from the data's "
                 f"class shares {final['class_kl']:.3f} nats)" + (f"; it favours {', '.join(favoured)}." if favoured
                                                                  else "."))
    outside = {c: v for c, v in final.get("outside_histogram", {}).items() if v >= COVERED_SHARE}
    if outside:
        lines.append(", ".join(f"{v:.0%} look like {c}" for c, v in outside.items())
                     + (", a class" if len(outside) == 1 else ", classes") + " not trained on.")
    return lines


def evaluator_line(result: dict[str, Any]) -> str:
    """The evaluator that scored a run, with its held-out figure, and the scoring time (a run
    scored by an older gan_core names the figure ``test_accuracy``)."""
    e = result["evaluator"]
    figure, name = e.get("held_out", e.get("test_accuracy")), e.get("held_out_name", "test accuracy")
    return f"Evaluator {e['version']}, {e['source']}; {name} {figure:.2%}. Scoring took {result['seconds']} s."
