"""What the figures say, in sentences: the losses of a run and its scores.

The thresholds below are for losses on logits as in ``models.losses`` (BCE, least squares,
hinge); D's outputs are probabilities for every loss.
"""
from __future__ import annotations

from typing import Any

from ..evaluation.scores import COVERED_SHARE, KID_NO_SPREAD
from ..models import LogSchema

MIN_ROWS = 20  # fewer log rows than this: too short to speak of trends
D_WINS_LOSS = 0.1  # mean D loss below this (BCE at chance is 2 ln 2 = 1.39): D classifies all but perfectly
D_WINS_PROB = 0.1  # D(x) > 1 - this and D(G(z)) < this: D separates real from fake
G_FOOLS_PROB = 0.9  # D(G(z)) in the G step above this: D no longer tells fakes apart
CHANCE_PROB = 0.1  # D(x) and D(G(z)) both within this of 0.5: D at chance
RISE_REL, RISE_NOISE = 0.2, 1.0  # a steady rise: fitted rise > 20 % of the level and > 1 std of the residuals
SWING_REL = 0.15  # smoothed loss wandering by more than 15 % of its level: oscillation


def loss_reading(stats: dict[str, float], schema: LogSchema, loss: str = "bce") -> list[str]:
    """Short sentences that interpret ``analysis.losses.loss_stats`` of a run whose log has
    ``schema``, trained with the loss ``loss`` (config.loss.kind); thresholds are the constants
    atop this module."""
    share = f"the last {stats['tail']:.0%} of steps"
    said = [f"the log holds {stats['nonfinite']} rows of non-finite losses: training diverged"] \
        if stats["nonfinite"] else []
    if stats["rows"] < MIN_ROWS:
        return said + [f"only {stats['rows']} log rows: too short to judge trends "
                       "(log more often or train longer)"]
    if loss == "wgan-gp" and "mean_loss_d" in stats:  # a critic's loss has no "chance" level; its negative estimates W
        said.append(f"critic loss {stats['mean_loss_d']:.3g} over {share}: minus the critic's estimate of the "
                    "Wasserstein distance (plus the gradient penalty); it should approach 0 from below as G improves")
    elif "mean_loss_d" in stats:  # a GAN (a diffusion model has one loss and no adversary)
        said += _balance_sentences(stats)
    said += _trend_sentences(stats, share, loss)
    spikes = {key: stats[f"spikes_{key}"] for key in ("loss", "loss_d", "loss_g") if stats.get(f"spikes_{key}")}
    if spikes:
        counts = " and ".join(f"{n} in {schema.label(key)}" for key, n in spikes.items())
        said.append(f"spikes: {counts} (beyond {stats['spike_k']:g} robust std of the rolling median): "
                    "unstable updates")
    if "mean_loss" in stats:
        return said or [f"no warning signs: over {share} the denoising loss is steady, without trend or spikes"]
    return said or [f"no warning signs: over {share} the losses are steady, without trend or spikes, "
                    "and D neither wins nor gives up"]


def _balance_sentences(stats: dict[str, float]) -> list[str]:
    """Who wins: from the D loss level and D's outputs over the tail."""
    d, real, fake = stats["mean_loss_d"], stats["mean_d_real"], stats["mean_d_fake"]
    said = []
    if d < D_WINS_LOSS:
        said.append(f"D loss fell to ~0 ({d:.2g}): the discriminator wins; G's gradients vanish, "
                    "so expect little further progress and check the samples for collapse")
    elif real > 1 - D_WINS_PROB and fake < D_WINS_PROB:
        said.append(f"D separates real from fake (D(x) ≈ {real:.2f}, D(G(z)) ≈ {fake:.2f}): "
                    "the discriminator wins")
    elif abs(real - 0.5) < CHANCE_PROB and abs(fake - 0.5) < CHANCE_PROB:
        said.append(f"D is near chance (D(x) ≈ {real:.2f}, D(G(z)) ≈ {fake:.2f}): the ideal "
                    "equilibrium, or a D that stopped learning; judge by the samples")
    if stats["mean_d_fake_g"] > G_FOOLS_PROB:
        said.append(f"D(G(z)) ≈ {stats['mean_d_fake_g']:.2f} in the G step: G fools D entirely; "
                    "D may be too weak")
    return said


def _trend_sentences(stats: dict[str, float], share: str, loss: str) -> list[str]:
    d_name = "critic" if loss == "wgan-gp" else "D"
    names = {key: name for key, name in (("loss_g", "G"), ("loss_d", d_name), ("loss", "denoising"))
             if f"mean_{key}" in stats}
    said = []
    for key, name in names.items():
        level, rise = max(abs(stats[f"mean_{key}"]), 0.1), stats[f"rise_{key}"]
        if abs(rise) > RISE_REL * level and abs(rise) > RISE_NOISE * stats[f"noise_{key}"]:
            way = "rising" if rise > 0 else "falling"
            said.append(f"{name} loss {way} steadily ({rise:+.2f} over {share})" + _trend_meaning(key, rise, d_name))
    swinging = [name for key, name in sorted(names.items())
                if stats[f"swing_{key}"] > SWING_REL * max(abs(stats[f"mean_{key}"]), 0.1)]
    if swinging:
        said.append(f"losses oscillate without settling ({' and '.join(swinging)} loss, smoothed, "
                    f"swing by more than {SWING_REL:.0%} of their level over {share})")
    return said


def _trend_meaning(key: str, rise: float, d_name: str) -> str:
    if key == "loss_g" and rise > 0:
        return f": {d_name} is overpowering G"
    if key == "loss_d" and rise > 0:
        return f": G is catching up with {d_name}"
    if key == "loss" and rise > 0:
        return ": training is diverging, try a lower learning rate"
    return ": still learning, train longer" if key in ("loss_g", "loss") else ""


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
    if covered <= total // 2:
        lines.append("Half of the classes or more are missing: mode collapse.")
    elif final["recall"] < 0.5 * floor["recall"]:
        lines.append("Recall is under half the floor's: the samples miss much of the data's variety.")
    return lines
