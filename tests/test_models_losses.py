import math

import pytest
import torch
import torch.nn.functional as F

from gan_core import models
from gan_core.config import ConfigError, LossConfig, class_index, from_dict
from gan_core.models import count_parameters, dcgan_init
from gan_core.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_core.models.losses import GANLoss, gradient_penalty
from gan_core.models.mlp import MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(size, channels):
    g, d = DCGANGenerator(10, channels, size, ngf=4), DCGANDiscriminator(channels, size, ndf=4)
    images = g(torch.randn(3, 10))
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1.0
    assert d(images).shape == (3,)


def test_widths_follow_ngf():
    small, large = DCGANGenerator(100, 3, 64, ngf=32), DCGANGenerator(100, 3, 64, ngf=64)
    assert small.net[0].out_channels == 32 * 8 and large.net[0].out_channels == 64 * 8  # ngf*8 x 4 x 4
    assert count_parameters(large) > 3 * count_parameters(small)


def test_dcgan_init():
    torch.manual_seed(0)
    g = DCGANGenerator(100, 3, 64, ngf=64)
    g.apply(dcgan_init)
    conv, bn = g.net[3], g.net[4]
    assert abs(conv.weight.std().item() - 0.02) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and bn.bias.abs().max() == 0


def test_bad_size():
    with pytest.raises(ValueError, match="48 px"):
        DCGANGenerator(10, 1, 48)


def test_bce_loss_values():
    loss = GANLoss(LossConfig(kind="bce"))
    zero = torch.zeros(4)
    assert loss.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert loss.g_loss(zero).item() == pytest.approx(math.log(2))
    confident = torch.full((4,), 20.0)
    assert loss.d_loss(confident, -confident).item() == pytest.approx(0, abs=1e-6)
    assert loss.g_loss(-confident).item() == pytest.approx(20, abs=1e-6)
    logits = torch.tensor([-2.0, 0.5, 3.0])
    expected = F.binary_cross_entropy(torch.sigmoid(logits), torch.ones(3))
    assert loss.g_loss(logits).item() == pytest.approx(expected.item(), rel=1e-5)


def test_label_smoothing_is_one_sided():
    smooth = GANLoss(LossConfig(kind="bce", real_label=0.9))
    plain = GANLoss(LossConfig(kind="bce"))
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    assert smooth.d_loss(real, fake) > plain.d_loss(real, fake)
    assert smooth.g_loss(fake) == plain.g_loss(fake)  # G's target stays 1
    # the real term is minimised at logit(0.9), not at +inf
    best = torch.tensor([math.log(0.9 / 0.1)])
    assert smooth.d_loss(best, torch.tensor([-50.0])) < smooth.d_loss(best + 2, torch.tensor([-50.0]))


def test_lsgan_loss_values():
    loss = GANLoss(LossConfig(kind="mse"))
    assert loss.d_loss(torch.ones(3), torch.zeros(3)).item() == 0
    assert loss.d_loss(torch.zeros(3), torch.ones(3)).item() == pytest.approx(1.0)  # 0.5 * (1 + 1)
    assert loss.g_loss(torch.full((3,), 0.0)).item() == pytest.approx(0.5)
    assert loss.prob(torch.tensor([0.7])).item() == pytest.approx(0.7)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_mlp_shapes(shape):
    g, d = MLPGenerator(10, shape, (32, 64, 128)), MLPDiscriminator(shape, (64, 32), dropout=0.3)
    images = g(torch.randn(4, 10))
    assert images.shape == (4, *shape) and images.abs().max() <= 1.0
    assert d(images).shape == (4,)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == 3
    assert sum(isinstance(m, torch.nn.Dropout) for m in d.modules()) == 2


def test_hinge_loss_values():
    loss = GANLoss(LossConfig(kind="hinge"))
    zero = torch.zeros(4)
    assert loss.d_loss(zero, zero).item() == pytest.approx(2.0)  # both margins violated by 1
    assert loss.d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0  # beyond the margins
    assert loss.d_loss(torch.tensor([0.5]), torch.tensor([-3.0])).item() == pytest.approx(0.5)
    assert loss.g_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_gradient_penalty_on_interpolates():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    w = torch.randn(16)
    unit = lambda x: x.flatten(1) @ (w / w.norm())  # a 1-Lipschitz linear critic: gradient norm 1
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    steep = lambda x: x.flatten(1) @ (3 * w / w.norm())  # gradient norm 3: penalty (3 - 1)^2
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-5)
    seen = []
    def spy(x):
        seen.append(x.detach())
        return unit(x)
    gradient_penalty(spy, real, fake)
    t = (seen[0] - fake) / (real - fake)  # each sample lies on the segment between its real and fake
    assert ((t >= 0) & (t <= 1)).all() and torch.allclose(t, t[:, :1, :1, :1].expand_as(t), atol=1e-4)
    wgan = GANLoss(LossConfig(kind="wgan-gp"))
    assert wgan.d_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == -3.0


FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("embed_dim", [0, 6])
def test_conditional_models_use_the_label(arch, embed_dim):
    config = from_dict({"model": {"arch": arch, "conditional": True, "embed_dim": embed_dim, "latent_dim": 8,
                                  }, "dcgan": {"ngf": 4, "ndf": 4}, "mlp": {"g_hidden": [16], "d_hidden": [16]}})
    family = models.build(config, (1, 28, 28), FASHION)
    g, d = family.generator.eval(), family.discriminator.eval()
    z, x = torch.randn(4, 8), torch.rand(4, 1, 28, 28) * 2 - 1
    sneaker, bag = torch.full((4,), 7), torch.full((4,), 8)
    assert g(z, sneaker).shape == (4, 1, 28, 28) and d(x, sneaker).shape == (4,)
    assert not torch.allclose(g(z, sneaker), g(z, bag))  # same z, another class: another image
    assert not torch.allclose(d(x, sneaker), d(x, bag))  # D judges an image with its class
    assert g.label.dim == (embed_dim or 10)
    assert family.labels_of("Sneaker", 3).tolist() == [7, 7, 7]
    assert family.default_labels(12).tolist() == list(range(10)) + [0, 1]


def test_conditional_needs_classes_and_cycles_the_kept_ones():
    config = from_dict({"model": {"conditional": True}, "data": {"classes": ["Sneaker", "Bag"]}})
    with pytest.raises(ConfigError, match="classes"):
        models.build(config, (1, 28, 28))
    family = models.build(config, (1, 28, 28), FASHION)
    assert family.default_labels(5).tolist() == [7, 8, 7, 8, 7]
    assert family.trained_classes() == ["Sneaker", "Bag"]
    trained = r"\(trained classes: \['Sneaker', 'Bag'\]\)"
    with pytest.raises(ConfigError, match=r"'Sock' is not a class this model was trained on " + trained):
        family.labels_of("Sock", 2)
    with pytest.raises(ConfigError, match=r"'Coat' is not a class this model was trained on " + trained):
        family.labels_of("Coat", 2)
    assert family.labels_of("8", 1).tolist() == [8]  # an id given as text, as the CLI passes it


def test_class_names_win_over_ids():
    folders = [str(k) for k in (1, 10, 100, 2)]  # image folders sort by name
    assert class_index("10", folders, "x") == 1 and class_index(10, folders, "x") == 1
    assert class_index("3", folders, "x") == 3
