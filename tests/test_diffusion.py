import math

import numpy as np
import pytest
import torch

from gan_core.config import from_dict
from gan_core.data import load_data
from gan_core.models.diffusion import diffusion_loss, make_schedule, q_sample, sample
from gan_core.models.unet import UNet


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: on a 2-core machine shared with other jobs, two threads spin and run 5-10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits resized to 28 px in [-1, 1]: (1500, 1, 28, 28), labels (1500,)."""
    data = load_data(from_dict({"data": {"name": "digits", "image_size": 28}}, "test"))
    return data.images, data.labels


@pytest.fixture(scope="module")
def trained(digits):
    """A tiny class-conditional U-Net after 40 steps on digits, with its loss before and after."""
    images, labels = digits
    torch.manual_seed(0)
    model, schedule = UNet(1, 28, base_width=16, width_mults=(1, 2), num_classes=10), make_schedule("linear", 50)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def eval_loss():  # the same t, noise and null-label draws each time
        torch.manual_seed(1)
        with torch.no_grad():
            return diffusion_loss(model, schedule, images[:256], labels[:256]).item()

    before = eval_loss()
    gen = torch.Generator().manual_seed(2)
    for _ in range(40):
        idx = torch.randint(0, len(images), (32,), generator=gen)
        loss = diffusion_loss(model, schedule, images[idx], labels[idx], p_uncond=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, schedule, before, eval_loss()


def test_linear_schedule_matches_closed_form():
    ho = make_schedule("linear", 1000)  # Ho et al.'s T = 1000: no scaling
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(ho.betas.numpy(), betas, rtol=1e-5)
    np.testing.assert_allclose(ho.alphas.numpy(), 1 - betas, rtol=1e-6)
    np.testing.assert_allclose(ho.alpha_bar.numpy(), np.cumprod(1 - betas), rtol=1e-4)
    assert ho.alpha_bar[-1].item() == pytest.approx(4.04e-5, rel=0.01)
    short = make_schedule("linear", 150)  # scaled by 1000 / 150: about as noisy at the end
    np.testing.assert_allclose(short.betas.numpy(), np.linspace(1e-4, 0.02, 150) * 1000 / 150, rtol=1e-5)
    assert short.alpha_bar[-1].item() < 1e-4
    assert make_schedule("linear", 150, scale_to_T=False).alpha_bar[-1].item() > 0.1
    post = short.betas[1:] * (1 - short.alpha_bar[:-1]) / (1 - short.alpha_bar[1:])
    torch.testing.assert_close(short.posterior_variance[1:], post)
    assert short.posterior_variance[0].item() == 0.0


def test_cosine_schedule_matches_closed_form():
    T, s = 150, 0.008
    c = make_schedule("cosine", T)
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
    # every beta but the last is below the 0.999 clip, so alpha_bar_t = f(t + 1) / f(0) exactly
    np.testing.assert_allclose(c.alpha_bar[:-1].numpy(), (f[1:] / f[0])[:-1], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(c.betas[:-1].numpy(), (1 - f[1:] / f[:-1])[:-1], rtol=1e-4, atol=1e-7)
    assert c.betas.max().item() == pytest.approx(0.999) and (c.betas > 0).all()
    torch.testing.assert_close(c.alphas, 1 - c.betas)


def test_bad_schedules_fail_fast():
    with pytest.raises(ValueError, match="larger T"):
        make_schedule("linear", 20)  # beta_end 0.02 * 1000 / 20 = 1
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("quadratic", 100)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_forward_process_ends_in_standard_normal(digits, kind):
    x0 = digits[0][:1000]  # mostly background: mean about -0.7
    schedule = make_schedule(kind, 150)
    t = torch.full((len(x0),), 149)
    xt = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    assert abs(xt.mean().item()) < 0.01 and abs(xt.std().item() - 1) < 0.01
    early = q_sample(schedule, x0, torch.zeros_like(t), torch.randn_like(x0))  # t = 0: barely noised
    assert torch.corrcoef(torch.stack([early.flatten(), x0.flatten()]))[0, 1] > 0.95


def test_training_reduces_loss(trained):
    _, _, before, after = trained
    assert before == pytest.approx(1.0, abs=0.05)  # zero-initialised output: eps_hat = 0
    assert after < 0.3 * before


@pytest.mark.parametrize("channels, size, mults", [(1, 28, (1, 2, 2)), (3, 28, (1, 2, 2)), (1, 32, (1, 2, 2, 2)),
                                                   (3, 32, (1, 2)), (3, 64, (1, 2, 2, 2))])
def test_unet_keeps_shape(channels, size, mults):
    model = UNet(channels, size, base_width=8, width_mults=mults, num_classes=3, attention=True)
    x = torch.randn(2, channels, size, size)
    assert model(x, torch.tensor([0, 99]), torch.tensor([1, 3])).shape == x.shape
    assert model(x, torch.tensor([5, 6])).shape == x.shape  # no labels: the null class


def test_unet_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet(1, 28, width_mults=(1, 2, 2, 2))


def test_conditional_sampling_is_seeded_and_uses_labels(trained):
    model, schedule, _, _ = trained
    model.train()
    y = torch.arange(6) % 10

    def draw(seed, labels=y, **kw):
        return sample(model, schedule, 6, (1, 28, 28), y=labels, generator=torch.Generator().manual_seed(seed), **kw)

    a = draw(0)
    assert a.shape == (6, 1, 28, 28) and model.training  # train mode restored
    assert torch.equal(a, draw(0)) and not torch.equal(a, draw(1))
    assert not torch.allclose(a, draw(0, labels=(y + 1) % 10))
    assert torch.isfinite(a).all() and a.abs().max() <= 1


def test_full_t_sampling_is_ho_algorithm_2(trained):
    """steps = T, eta = 1 equals ancestral DDPM written out with Ho et al.'s posterior mean."""
    model, s, _, _ = trained
    y, gen = torch.tensor([3, 7]), torch.Generator().manual_seed(5)
    ours = sample(model, s, 2, (1, 28, 28), y=y, generator=torch.Generator().manual_seed(5))
    x = torch.randn(2, 1, 28, 28, generator=gen)
    model.eval()
    with torch.no_grad():
        for t in reversed(range(s.T)):
            ab, ab_prev, beta = s.alpha_bar[t], s.alpha_bar_prev[t], s.betas[t]
            eps = model(x, torch.full((2,), t), y)
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            mean = (ab_prev.sqrt() * beta * x0 + s.alphas[t].sqrt() * (1 - ab_prev) * x) / (1 - ab)  # Ho eq. 7
            x = mean + s.posterior_variance[t].sqrt() * torch.randn(2, 1, 28, 28, generator=gen) if t > 0 else mean
    torch.testing.assert_close(ours, x.clamp(-1, 1), atol=1e-4, rtol=0)


def test_ddim_few_steps_and_trajectory(trained):
    model, schedule, _, _ = trained

    def gen():
        return torch.Generator().manual_seed(3)

    x, traj = sample(model, schedule, 4, (1, 28, 28), steps=10, eta=0.0, generator=gen(), return_trajectory=5)
    assert x.shape == (4, 1, 28, 28) and torch.isfinite(x).all() and x.abs().max() <= 1
    assert traj.shape == (5, 4, 1, 28, 28)
    torch.testing.assert_close(traj[0], torch.randn(4, 1, 28, 28, generator=gen()))  # starts at the noise
    torch.testing.assert_close(traj[-1].clamp(-1, 1), x)  # ends at the images
    assert torch.equal(x, sample(model, schedule, 4, (1, 28, 28), steps=10, eta=0.0, generator=gen()))


def test_classifier_free_guidance(trained):
    model, schedule, _, _ = trained
    y = torch.tensor([0, 1, 2, 3])

    def draw(w):
        return sample(model, schedule, 4, (1, 28, 28), y=y, steps=20, guidance=w,
                      generator=torch.Generator().manual_seed(4))

    plain, guided = draw(0.0), draw(3.0)
    assert torch.isfinite(guided).all() and guided.abs().max() <= 1
    assert not torch.allclose(plain, guided)
    with pytest.raises(ValueError, match="guidance needs"):
        sample(model, schedule, 4, (1, 28, 28), guidance=1.0)
    with pytest.raises(ValueError, match="labels in"):
        sample(UNet(1, 28, base_width=8), schedule, 4, (1, 28, 28), y=y)


def test_diffusion_generator_images_depend_on_their_own_start_noise_only():
    """Each sample's step noise is its own: the same z gives the same image wherever it sits in
    a batch, and another z at the same position gives another image (eta 1, ancestral DDPM)."""
    from gan_core.models.diffusion import DiffusionGenerator
    torch.manual_seed(0)
    unet = UNet(1, 8, base_width=8, width_mults=(1, 2))
    for p in unet.parameters():  # away from the zero initialisation, so eps depends on x
        p.data.normal_(0, 0.05)
    g = DiffusionGenerator(unet, make_schedule("linear", 30), (1, 8, 8), steps=None, eta=1.0, seed=3)
    z = torch.randn(4, 64)
    a, b = g(z), g(torch.cat([z[2:], z[:2]]))
    assert torch.equal(a[:2], b[2:]) and torch.equal(a[2:], b[:2])
    other = g(torch.randn(4, 64))
    assert (a - other).abs().mean() > 0.1
