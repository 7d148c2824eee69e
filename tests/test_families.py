"""Model families: every registered family keeps the same small interface, the trainer steps
them through its step context, and a family that is not a GAN, defined in this file only and
registered by one line, runs through the trainer, every notebook and the index."""
import math
import os
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from gan_core import families
from gan_core.config import ConfigError
from gan_core.families import Description, LogSchema, Network, Panel
from gan_core.models import ModelFamily, build, count_parameters
from gan_core.models.summary import layer_table
from gan_core.training import Trainer, read_log
from gan_core.training.step import StepContext
from gan_core.models import Precision

from .conftest import REPO, real_data_name

FAMILY_CONFIGS = {
    "dcgan": {"model": {"arch": "dcgan"}},
    "dcgan-conditional": {"model": {"arch": "dcgan", "conditional": True, "embed_dim": 4},
                          "data": {"classes": [1, 3, 7]}},
    "mlp": {"model": {"arch": "mlp"}, "mlp": {"g_hidden": [16], "d_hidden": [16]}, "data": {"image_size": 8}},
    "mlp-conditional": {"model": {"arch": "mlp", "conditional": True}, "mlp": {"g_hidden": [16], "d_hidden": [16]},
                        "data": {"image_size": 8}},
    "ddpm": {"model": {"arch": "ddpm"}, "diffusion": {"timesteps": 30, "base_width": 8, "sample_steps": 4},
             "data": {"image_size": 16}},
}
CLASSES = [str(k) for k in range(10)]


# --- a family that is not a GAN, known to gan_core by this file alone ---------------------------
@dataclass(frozen=True)
class PixelSettings:
    """The ``pixels:`` section."""

    init_sigma: float = 0.5  # the standard deviation every pixel starts with


class PixelGaussianFamily(families.Family):
    """Each pixel an independent Gaussian, fitted by maximum likelihood: its latent is one
    standard normal number per pixel."""

    arch, name, kind, section, settings = "pixels", "per-pixel Gaussian", "density model", "pixels", PixelSettings
    implementation = "tests.test_families:PixelGaussian"
    channels_last = False

    def check(self, config):
        return None if config.family.init_sigma > 0 else f"pixels.init_sigma must be > 0 (got {config.family.init_sigma})"

    def log_schema(self, config) -> LogSchema:
        return LogSchema(("nll", "sigma"), {"nll": "negative log-likelihood (nats per pixel)", "sigma": "mean sigma"},
                         ("nll",), (Panel("Spread of the pixels", ("sigma",), "sigma"),))


class PixelGenerator(nn.Module):
    """z (B, C*H*W) -> mu + sigma * z, clipped to [-1, 1]."""

    def __init__(self, shape, init_sigma):
        super().__init__()
        self.shape, self.latent_dim = tuple(shape), math.prod(shape)
        self.mu = nn.Parameter(torch.zeros(shape))
        self.log_sigma = nn.Parameter(torch.full(shape, math.log(init_sigma)))

    def forward(self, z, y=None):
        return (self.mu + self.log_sigma.exp() * z.view(len(z), *self.shape)).clamp(-1, 1)

    def nll(self, x):
        return (0.5 * ((x - self.mu) / self.log_sigma.exp()) ** 2 + self.log_sigma + 0.5 * math.log(2 * math.pi)).mean()


class PixelGaussian(ModelFamily):
    latent_note = "Per-pixel Gaussian: its latent is one standard normal number per pixel."

    def build_networks(self):
        return {"generator": PixelGenerator(self.shape, self.config.family.init_sigma)}

    def training_step(self, real, labels, ctx):
        real = ctx.batch(real)
        with ctx.autocast():
            nll = self.generator.nll(real)
        ctx.step("optim_g", nll)
        return {"nll": nll.detach(), "sigma": self.generator.log_sigma.exp().mean().detach()}

    def summary(self):
        return f"pixels {count_parameters(self.generator):,} params"

    def describe(self):
        rows = layer_table(self.generator, torch.zeros(1, self.latent_dim))
        return Description(f"A Gaussian per pixel: {count_parameters(self.generator):,} parameters.",
                           [Network("Per-pixel Gaussian", rows, f"z ({self.latent_dim})", "image")])


families.register(PixelGaussianFamily())  # the one line that makes it known


# --- every family ----------------------------------------------------------------------------------
@pytest.fixture(params=FAMILY_CONFIGS, ids=str)
def family(request, tiny_config):
    config = tiny_config(**FAMILY_CONFIGS[request.param])
    size = config.data.image_size
    torch.manual_seed(0)
    return build(config, (1, size, size), CLASSES)


def context(family):
    return StepContext(family, family.config, Precision(), total_steps=10)


def test_the_built_in_families_are_registered():
    assert {"dcgan", "mlp", "ddpm"} <= set(families.known())
    assert all(issubclass(families.implementation(arch), ModelFamily) for arch in families.known())
    with pytest.raises(ConfigError, match="model.arch must be one of 'dcgan', 'mlp', 'ddpm'"):
        from gan_core.config import from_dict
        from_dict({"model": {"arch": "vae"}}, "x.yaml")


def test_moved_settings_say_where_they_went():
    from gan_core.config import from_dict
    with pytest.raises(ConfigError, match=r"x.yaml: model.ngf is now dcgan.ngf .* 'dcgan: \{ngf: 32\}'"):
        from_dict({"model": {"ngf": 32}}, "x.yaml")


def test_training_step_returns_its_log_schema(family):
    real = torch.rand(8, *family.shape) * 2 - 1
    labels = family.default_labels(8)
    before = {k: v.clone() for k, v in family.generator.state_dict().items()}
    values = family.training_step(real, labels, context(family))
    assert tuple(values) == family.log_schema().columns
    assert all(v.dim() == 0 and torch.isfinite(v) for v in values.values())
    after = family.generator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the generator did not learn"


def test_sample_shape_range_and_seed(family):
    images = family.sample(6, generator=torch.Generator().manual_seed(1))
    again = family.sample(6, generator=torch.Generator().manual_seed(1))
    assert images.shape == (6, *family.shape) and images.dtype == torch.float32
    assert images.abs().max() <= 1.0 + 1e-5
    assert torch.equal(images, again)


def test_state_dict_round_trip_samples_the_same(family):
    family.training_step(torch.rand(8, *family.shape) * 2 - 1, family.default_labels(8), context(family))
    clone = build(family.config, family.shape, CLASSES)
    clone.load_state_dict(family.state_dict())
    z = family.latents(4, torch.Generator().manual_seed(2))
    assert torch.equal(family.generate(z), clone.generate(z))
    assert set(family.state_keys) <= set(family.state_dict())


def test_describe_and_summary_name_the_networks(family):
    description = family.describe()
    assert isinstance(description, Description)
    assert description.text and description.networks
    assert all(n.rows and n.input_label and n.output_label for n in description.networks)
    assert family.summary()


def test_conditional_family_knows_its_trained_classes(tiny_config):
    family = build(tiny_config(**FAMILY_CONFIGS["dcgan-conditional"]), (1, 28, 28), CLASSES)
    assert family.trained_classes() == ["1", "3", "7"]
    assert family.default_labels(4).tolist() == [1, 3, 7, 1]
    with pytest.raises(ConfigError, match="trained classes"):
        family.labels_of("9", 2)


def test_models_are_plain(family):
    """The families own networks only: optimizers, scaling and the average are the trainer's."""
    assert not hasattr(family, "optimizers") and not hasattr(family, "ema")
    assert all(isinstance(net, nn.Module) for net in family.networks.values())


def test_the_trainer_runs_a_family_that_is_not_a_gan(tiny_config, tmp_path):
    config = tiny_config(model={"arch": "pixels"}, pixels={"init_sigma": 0.3}, optim_g={"lr": 0.05})
    trainer = Trainer(config, tmp_path)
    assert isinstance(trainer.family, PixelGaussian) and trainer.ctx.state_keys == ("optim_g",)
    trainer.fit(progress=False, log=lambda line: None)
    rows = read_log(tmp_path / "log.csv")
    assert rows and {"nll", "sigma"} <= set(rows[0]) and rows[-1]["nll"] < rows[0]["nll"]
    family = trainer.run.family()  # what readers of the run folder know of it, without torch
    assert family["arch"] == "pixels" and family["kind"] == "density model" and family["log"]["losses"] == ["nll"]
    with pytest.raises(ConfigError, match="pixels.init_sigma must be > 0"):
        tiny_config(model={"arch": "pixels"}, pixels={"init_sigma": 0.0})


@pytest.mark.slow
def test_a_new_family_runs_a_seeded_sweep_through_every_notebook(tmp_path, monkeypatch):
    """Registered from this file by the environment (GAN_WORKBOOK_FAMILIES), with no change to
    gan_core: every notebook of every run and the index, its claims and verdicts."""
    import json

    from gan_core.orchestration.runner import run_sweep
    from gan_core.orchestration.sweep import load_sweep
    monkeypatch.setenv(families.PLUGINS, "tests.test_families")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    (tmp_path / "base.yaml").write_text(f"""
data: {{name: {real_data_name()}, subset: 256}}
model: {{arch: pixels}}
optim_g: {{lr: 0.01}}
train: {{epochs: 3, batch_size: 32, log_every: 2, num_samples: 16, threads: 1}}
eval: {{samples: 200, checkpoint_samples: 100, cache_dir: {tmp_path / 'cache'}}}
""")
    (tmp_path / "s.yaml").write_text("""base: base.yaml
variants:
  slow: {}
  fast: {optim_g.lr: 0.05}
seeds: [0, 1]
claims:
  - {claim: a faster learning rate fits the pixels better, predicts: {better: fast, than: slow, score: fd}}
""")
    lines = []
    assert run_sweep(load_sweep(tmp_path / "s.yaml"), tmp_path / "reports", jobs=2, log=lines.append) == 0, lines
    folder = tmp_path / "reports" / "s"
    for run in ("slow-s0", "fast-s1"):
        pages = sorted(p.name for p in (folder / run).glob("*.html"))
        assert len(pages) == 6, pages
        for page in pages:
            assert "Traceback" not in (folder / run / page).read_text()
        assert json.loads((folder / run / "family.json").read_text())["name"] == "per-pixel Gaussian"
    index = (folder / "index.html").read_text()
    assert "Claims" in index and "fast vs slow (reference)" in index and "negative log-likelihood" in index
