"""Unit tests of the architecture tables and drawings, the loss statistics and their reading, and
the figures, on small DCGANs and synthetic logs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from gan_core import families, models  # noqa: E402
from gan_core.analysis import losses  # noqa: E402
from gan_core.config import from_dict  # noqa: E402
from gan_core.models import count_parameters  # noqa: E402
from gan_core.models.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from gan_core.models.summary import layer_table  # noqa: E402
from gan_core.families.gan import D_WINS_LOSS  # noqa: E402
from gan_core.reporting import figures, images, prose  # noqa: E402
from gan_core.reporting.architecture import draw_network, draw_networks, stages  # noqa: E402
from gan_core.training.trainer import log_columns  # noqa: E402

BCE_CONFIG = from_dict({})
WGAN_CONFIG = from_dict({"loss": {"kind": "wgan-gp"}, "dcgan": {"d_norm": "layer"}})
GAN = families.family_of("dcgan").log_schema(BCE_CONFIG)
CRITIC = families.family_of("dcgan").log_schema(WGAN_CONFIG)

COLUMNS = ["epoch", "step", "loss_d", "loss_g", "d_real", "d_fake", "d_fake_g", "acc_real", "acc_fake",
           "images_per_s", "time_s"]


def make_log(rows: int = 400, rows_per_epoch: int = 20, log_every: int = 4, seed: int = 0,
             **columns: np.ndarray) -> pd.DataFrame:
    """A log.csv as the trainer writes it: healthy, noisy losses unless ``columns`` replace some."""
    rng = np.random.default_rng(seed)
    noise = lambda scale: scale * rng.standard_normal(rows)  # noqa: E731
    data = {"epoch": np.arange(rows) // rows_per_epoch + 1, "step": (np.arange(rows) + 1) * log_every,
            "loss_d": 1.2 + noise(0.05), "loss_g": 0.9 + noise(0.05), "d_real": 0.65 + noise(0.02),
            "d_fake": 0.35 + noise(0.02), "d_fake_g": 0.37 + noise(0.02), "acc_real": 0.8 + noise(0.02),
            "acc_fake": 0.8 + noise(0.02), "images_per_s": 2000 + noise(50.0),
            "time_s": 1.7e9 + np.arange(rows) * 0.1}
    data.update(columns)
    return pd.DataFrame(data, columns=COLUMNS)


def labeled_lines(ax) -> dict:
    """Lines that appear in the legend, by label."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def all_finite(fig: Figure) -> bool:
    return all(np.isfinite(np.asarray(line.get_xydata(), float)).all()
               for ax in fig.axes for line in ax.get_lines())


def test_synthetic_log_has_the_trainers_columns():
    assert tuple(COLUMNS) == log_columns(from_dict({}))


# --- architecture ----------------------------------------------------------------------------
@pytest.mark.parametrize("size, channels, first", [(28, 1, 7), (32, 3, 4), (64, 3, 4)])
def test_layer_table_generator(size, channels, first):
    g = DCGANGenerator(16, channels, size, ngf=8)
    rows = layer_table(g, torch.zeros(2, 16))
    assert rows[0]["input_shape"] == (16, 1, 1)
    assert rows[-1]["output_shape"] == (channels, size, size)
    assert rows[-1]["type"] == "Tanh"
    assert sum(r["params"] for r in rows) == count_parameters(g)
    sides = [s["output_shape"][-1] for s in stages(rows)]
    assert sides == [first * 2 ** i for i in range(len(sides))]  # each stage doubles the side
    assert g.training  # mode restored


@pytest.mark.parametrize("size, channels", [(28, 1), (64, 3)])
def test_layer_table_discriminator(size, channels):
    d = DCGANDiscriminator(channels, size, ndf=8).eval()
    rows = layer_table(d, torch.zeros(3, channels, size, size))
    assert rows[0]["input_shape"] == (channels, size, size)
    assert rows[-1]["output_shape"] == (1, 1, 1)  # one logit per image; forward flattens it to (B,)
    assert rows[-1]["type"] == "Conv2d"
    assert sum(r["params"] for r in rows) == count_parameters(d)
    assert not d.training
    assert not any(m._forward_hooks for m in d.modules())


class Shared(torch.nn.Module):
    """One Linear applied twice: its weights must be counted once."""

    def __init__(self):
        super().__init__()
        self.fc, self.act = torch.nn.Linear(6, 6), torch.nn.ReLU()

    def forward(self, x):
        return self.fc(self.act(self.fc(x)))


def test_layer_table_counts_a_reused_layer_once():
    rows = layer_table(Shared(), torch.zeros(2, 6))
    assert [(r["name"], r["params"]) for r in rows] == [("fc", 42), ("act", 0), ("fc", 0)]
    assert [b["label"] for b in stages(rows)] == ["Linear 6→6 / ReLU", "Linear 6→6"]


def test_stages_group_layers_with_their_norm_and_activation():
    g = DCGANGenerator(16, 1, 28, ngf=8)
    blocks = stages(layer_table(g, torch.zeros(1, 16)))
    assert [b["label"] for b in blocks] == ["ConvT 7×7 s1 / BN / ReLU", "ConvT 4×4 s2 / BN / ReLU",
                                            "ConvT 4×4 s2 / Tanh"]
    assert [b["output_shape"] for b in blocks] == [(16, 7, 7), (8, 14, 14), (1, 28, 28)]


def test_draw_networks_draws_one_box_per_stage_and_the_ends():
    family = models.build(from_dict({"model": {"latent_dim": 16}, "dcgan": {"ngf": 8, "ndf": 8}}), (1, 28, 28))
    d = family.discriminator
    fig = draw_networks(family.describe().networks)
    ax_g, ax_d = fig.axes
    boxes = lambda ax: [p for p in ax.patches if isinstance(p, FancyBboxPatch)]  # noqa: E731
    assert len(boxes(ax_g)) == 3 + 2 and len(boxes(ax_d)) == 3 + 2
    texts = [t.get_text() for t in ax_g.texts]
    assert "z  (16)" in texts and "image  1×28×28" in texts
    assert any("→ 8×14×14" in t for t in texts)
    assert any("logit" in t.get_text() for t in ax_d.texts)
    assert f"{count_parameters(d):,}" in ax_d.get_title()


def test_draw_network_alone():
    rows = layer_table(DCGANDiscriminator(3, 32, ndf=8), torch.zeros(1, 3, 32, 32))
    fig = draw_network(rows, "D")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert "input  3×32×32" in [t.get_text() for t in fig.axes[0].texts]


# --- loss figures ----------------------------------------------------------------------------
def test_load_log_reads_and_checks(tmp_path):
    make_log(rows=30).to_csv(tmp_path / "log.csv", index=False)
    assert list(losses.load_log(tmp_path, GAN).columns) == COLUMNS
    make_log(rows=30).drop(columns="d_fake_g").to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ValueError, match="d_fake_g"):
        losses.load_log(tmp_path / "log.csv", GAN)
    with pytest.raises(FileNotFoundError):
        losses.load_log(tmp_path / "missing", GAN)


def test_loss_curves():
    log = make_log(rows=200, rows_per_epoch=20)
    fig = figures.loss_curves(log, GAN, smooth=10)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    lines = labeled_lines(ax)
    assert set(lines) == {"D loss", "G loss"}
    smooth_g = lines["G loss"].get_ydata()
    assert len(smooth_g) == 200 and np.std(smooth_g) < np.std(log["loss_g"])  # smoothed is smoother
    assert len([l for l in ax.get_lines() if l.get_label() == "_epoch"]) == 10 - 1
    assert all_finite(fig)


def test_loss_curves_clip_a_huge_spike_but_keep_the_curves():
    loss_g = np.full(200, 1.0) + 0.01 * np.random.default_rng(1).standard_normal(200)
    loss_g[100] = 500.0
    ax = figures.loss_curves(make_log(rows=200, loss_g=loss_g), GAN).axes[0]
    assert ax.get_ylim()[1] < 10


def test_per_epoch_weights_rows_by_steps():
    log = make_log(rows=3, rows_per_epoch=3)
    log["step"] = [4, 8, 10]  # the epoch's last row averages 2 steps, the others 4
    log["loss_d"] = [1.0, 1.0, 4.0]
    assert losses.per_epoch(log).loc[1, "loss_d"] == pytest.approx((4 + 4 + 2 * 4) / 10)
    fig = figures.epoch_losses(make_log(rows=100, rows_per_epoch=10), GAN)
    assert len(labeled_lines(fig.axes[0])["D loss"].get_ydata()) == 10


def test_panels_show_what_d_says_and_its_accuracy():
    fig = figures.panels(make_log(), GAN)
    assert [ax.get_title() for ax in fig.axes] == ["What D says", "D accuracy"]
    assert len(labeled_lines(fig.axes[0])) == 3
    assert set(labeled_lines(fig.axes[1])) == {"real accuracy", "fake accuracy"}
    for ax in fig.axes:
        for line in labeled_lines(ax).values():
            assert ((line.get_ydata() >= 0) & (line.get_ydata() <= 1)).all()
    diffusion = families.family_of("ddpm").log_schema(from_dict({"model": {"arch": "ddpm"}}))
    assert figures.panels(make_log(), diffusion) is None  # a model that logs only its loss


def test_overlay_losses():
    logs = {"a": make_log(seed=1), "b": make_log(rows=100, rows_per_epoch=5, seed=2)}
    fig = figures.overlay_losses(logs, "loss_d", "D loss", x="epoch")
    lines = labeled_lines(fig.axes[0])
    assert set(lines) == {"a", "b"}
    assert lines["a"].get_xdata().max() == pytest.approx(20)
    assert lines["b"].get_xdata().max() == pytest.approx(20)
    assert all_finite(fig)
    with pytest.raises(ValueError, match="x must be"):
        figures.overlay_losses(logs, "loss_d", "D loss", x="time")


# --- loss statistics and their reading -------------------------------------------------------
def test_healthy_log_reads_as_no_warning():
    stats = losses.loss_stats(make_log(), GAN)
    assert stats["spikes_loss_d"] == stats["spikes_loss_g"] == 0
    said = prose.loss_reading(stats, GAN, BCE_CONFIG)
    assert len(said) == 1 and said[0].startswith("no warning signs")


def test_discriminator_wins_when_d_loss_goes_to_zero():
    t = np.linspace(0, 1, 400)
    log = make_log(loss_d=1.3 * np.exp(-12 * t) + 0.005, loss_g=1 + 6 * t, d_real=1 - 0.4 * np.exp(-12 * t),
                   d_fake=0.4 * np.exp(-12 * t))
    stats = losses.loss_stats(log, GAN)
    assert stats["mean_loss_d"] < D_WINS_LOSS
    said = prose.loss_reading(stats, GAN, BCE_CONFIG)
    assert any("the discriminator wins" in s for s in said)
    assert any("G loss rising steadily" in s and "overpowering" in s for s in said)


def test_oscillation_is_read():
    t = np.arange(400)
    log = make_log(loss_g=1 + 0.5 * np.sin(2 * np.pi * t / 40))
    assert any("oscillate" in s for s in prose.loss_reading(losses.loss_stats(log, GAN), GAN, BCE_CONFIG))


def test_diverged_log_is_read_and_still_plotted():
    log = make_log()
    log.loc[399, ["loss_d", "loss_g"]] = [np.nan, np.inf]  # the row the trainer stops on
    stats = losses.loss_stats(log, GAN)
    assert stats["nonfinite"] == 1 and np.isfinite(stats["mean_loss_g"])
    assert "diverged" in prose.loss_reading(stats, GAN, BCE_CONFIG)[0]
    assert len(figures.loss_curves(log, GAN).axes) == 1
    with pytest.raises(ValueError, match="NaN"):
        losses.loss_stats(make_log(rows=5, loss_d=np.full(5, np.nan)), GAN)


def test_short_log_is_too_short_to_judge():
    assert "too short" in prose.loss_reading(losses.loss_stats(make_log(rows=8), GAN), GAN, BCE_CONFIG)[0]


def test_spikes_are_counted_where_injected():
    values = 1 + 0.05 * np.random.default_rng(3).standard_normal(500)
    where = [120, 250, 251, 400]  # 250-251: one spike two rows long
    values[where] = 3.0
    found = losses.find_spikes(pd.Series(values))
    assert np.flatnonzero(found).tolist() == where
    assert losses.loss_stats(make_log(rows=500, loss_g=values), GAN)["spikes_loss_g"] == 3
    assert losses.find_spikes(pd.Series(np.ones(100))).sum() == 0


def test_noise_that_grows_late_in_training_is_not_a_spike():
    t = np.arange(500)
    rise = 1 / (1 + np.exp(-(t - 250) / 15))  # a smooth step, like G's loss when D pulls ahead
    values = 1 + 0.5 * rise + (0.01 + 0.2 * rise) * np.random.default_rng(4).standard_normal(500)
    values[:20] += np.linspace(0.5, 0, 20)  # the fast first descent
    assert losses.find_spikes(pd.Series(values)).sum() == 0


# --- images ----------------------------------------------------------------------------------
def test_image_grid_gray_maps_minus_one_to_black_and_one_to_white():
    batch = torch.cat([torch.full((8, 1, 28, 28), -1.0), torch.full((8, 1, 28, 28), 1.0)])
    fig = images.image_grid(batch, nrow=4, title="samples")
    (image,) = fig.axes[0].get_images()
    data = np.asarray(image.get_array())
    assert data.shape == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)
    assert image.get_cmap().name == "gray" and image.get_clim() == (0, 1)
    assert data[2:30, 2:30].max() == 0 and data[-30:-2, -30:-2].min() == 1
    assert fig.axes[0].get_title() == "samples"


def test_image_grid_color_and_bad_shape():
    fig = images.image_grid(torch.rand(5, 3, 32, 32) * 4 - 2)  # out of range: clipped
    data = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert data.shape[-1] == 3 and data.min() >= 0 and data.max() <= 1
    with pytest.raises(ValueError, match="N, C, H, W"):
        images.image_grid(torch.zeros(1, 28, 28))


def test_progression_titles_and_subsampling(tmp_path):
    paths = []
    for epoch in range(1, 11):
        paths.append(tmp_path / f"epoch_{epoch:03d}.png")
        save_image(torch.rand(4, 1, 8, 8), paths[-1], nrow=2)
    fig = figures.progression(paths[:3])
    assert [ax.get_title() for ax in fig.axes] == ["epoch 1", "epoch 2", "epoch 3"]
    titles = [ax.get_title() for ax in figures.progression(paths, max_panels=4).axes]
    assert len(titles) == 4 and titles[0] == "epoch 1" and titles[-1] == "epoch 10"
    assert figures.progression(paths[:1], labels=["start"]).axes[0].get_title() == "start"
    with pytest.raises(ValueError):
        figures.progression([])


def test_real_vs_fake():
    fig = images.real_vs_fake(torch.rand(9, 1, 28, 28) * 2 - 1, torch.rand(9, 1, 28, 28) * 2 - 1)
    assert [ax.get_title() for ax in fig.axes] == ["real", "generated"]


def test_wgan_gp_runs_name_the_critic():
    t = np.linspace(0, 1, 400)
    log = make_log(loss_d=-3 * np.exp(-3 * t) - 0.2, d_real=np.full(400, 0.9), d_fake=np.full(400, 0.05))
    legend = [text.get_text() for text in figures.loss_curves(log, CRITIC).axes[0].get_legend().get_texts()]
    assert legend == ["critic loss", "G loss"]
    assert "critic" in figures.panels(log, CRITIC).axes[0].get_title()
    said = prose.loss_reading(losses.loss_stats(log, CRITIC), CRITIC, WGAN_CONFIG)
    assert any("Wasserstein" in s for s in said) and any("critic loss rising" in s for s in said)
    assert not any("discriminator wins" in s for s in said)  # D(x) and D(G(z)) are no probabilities here
    assert any("discriminator wins" in s for s in prose.loss_reading(losses.loss_stats(log, GAN), GAN, BCE_CONFIG))  # as BCE


def test_class_rows_name_each_row():
    fig = images.class_rows(torch.rand(6, 1, 28, 28) * 2 - 1, ["Sneaker", "Bag"], title="per class")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Sneaker", "Bag"]
    with pytest.raises(ValueError, match="evenly"):
        images.class_rows(torch.rand(5, 1, 28, 28), ["Sneaker", "Bag"])


def test_nearest_neighbours_is_one_picture_with_each_distance_above_its_image():
    fake = torch.full((2, 1, 28, 28), -1.0)  # black
    neighbours = torch.ones(2, 3, 1, 28, 28)  # white
    neighbours[1, 2] = 0.0  # one grey neighbour: row 2, column 4
    fig = images.nearest_neighbours(fake, neighbours, torch.tensor([[0.5, 1.0, 2.0], [3.0, 4.0, 5.5]]))
    (ax,) = fig.axes
    (picture,) = ax.get_images()
    data = np.asarray(picture.get_array())
    labels = {text.get_text(): text.get_position() for text in ax.texts}
    assert list(labels) == ["generated", "d=0.5", "d=1.0", "d=2.0", "d=3.0", "d=4.0", "d=5.5"]
    pixel = lambda label: data[int(labels[label][1]) + 14, int(labels[label][0])]  # the image under a label
    assert pixel("generated") == 0 and pixel("d=0.5") == 1 and pixel("d=4.0") == 1 and pixel("d=5.5") == 0.5
