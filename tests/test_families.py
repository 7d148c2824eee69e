"""Model families: every registered family keeps the same small interface, and the trainer runs
a family it has never heard of."""
import pytest
import torch
from torch import nn

from gan_core.config import ConfigError
from gan_core.models import FAMILIES, GAN, Description, ModelFamily, build, log_schema
from gan_core.training import Trainer, read_log

FAMILY_CONFIGS = {
    "dcgan": {"model": {"arch": "dcgan"}},
    "dcgan-conditional": {"model": {"arch": "dcgan", "conditional": True, "embed_dim": 4},
                          "data": {"classes": [1, 3, 7]}},
    "mlp": {"model": {"arch": "mlp", "g_hidden": [16], "d_hidden": [16]}, "data": {"image_size": 8}},
    "mlp-conditional": {"model": {"arch": "mlp", "g_hidden": [16], "d_hidden": [16], "conditional": True},
                        "data": {"image_size": 8}},
    "ddpm": {"model": {"arch": "ddpm"}, "diffusion": {"timesteps": 30, "base_width": 8, "sample_steps": 4},
             "data": {"image_size": 16}},
}
CLASSES = [str(k) for k in range(10)]


@pytest.fixture(params=FAMILY_CONFIGS, ids=str)
def family(request, tiny_config):
    config = tiny_config(**FAMILY_CONFIGS[request.param])
    size = config.data.image_size
    torch.manual_seed(0)
    return build(config, (1, size, size), CLASSES)


def test_every_arch_is_registered():
    assert set(FAMILIES) == {"dcgan", "mlp", "ddpm"}
    assert all(issubclass(f, ModelFamily) for f in FAMILIES.values())


def test_training_step_returns_its_log_schema(family):
    real = torch.rand(8, *family.shape) * 2 - 1
    labels = family.default_labels(8)
    before = {k: v.clone() for k, v in family.generator.state_dict().items()}
    values = family.training_step(real, labels, step=0, progress=0.0)
    assert tuple(values) == log_schema(family.config).columns
    assert all(v.dim() == 0 and torch.isfinite(v) for v in values.values())
    after = family.generator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the generator did not learn"


def test_sample_shape_range_and_seed(family):
    images = family.sample(6, generator=torch.Generator().manual_seed(1))
    again = family.sample(6, generator=torch.Generator().manual_seed(1))
    assert images.shape == (6, *family.shape) and images.dtype == torch.float32
    assert images.abs().max() <= 1.0 + 1e-5
    assert torch.equal(images, again)


def test_state_dict_round_trip_samples_the_same(family, tiny_config):
    family.training_step(torch.rand(8, *family.shape) * 2 - 1, family.default_labels(8), 0, 0.0)
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


class LinearGAN(GAN):
    """A family the trainer has never seen: one linear layer each way."""

    archs = ("mlp",)

    def build_pair(self, codes):
        c, h, w = self.shape
        latent = self.config.model.latent_dim
        generator = nn.Sequential(nn.Linear(latent, c * h * w), nn.Tanh(), nn.Unflatten(1, (c, h, w)))
        generator.latent_dim = latent
        return _Unconditional(generator), _Unconditional(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 1),
                                                                         nn.Flatten(0)))


class _Unconditional(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.latent_dim = net, getattr(net, "latent_dim", None)

    def forward(self, x, y=None):
        return self.net(x)


def test_the_trainer_runs_a_new_family_unchanged(tiny_config, tmp_path, monkeypatch):
    """Registering a family is all it takes: the trainer, its log and checkpoints follow."""
    monkeypatch.setitem(FAMILIES, "mlp", LinearGAN)
    config = tiny_config(model={"arch": "mlp"}, data={"image_size": 8})
    trainer = Trainer(config, tmp_path)
    assert isinstance(trainer.family, LinearGAN)
    trainer.fit(progress=False, log=lambda line: None)
    rows = read_log(tmp_path / "log.csv")
    assert rows and {"loss_d", "loss_g"} <= set(rows[0])
    assert (tmp_path / "checkpoints" / "last.pt").exists()
