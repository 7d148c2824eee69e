import pytest
import torch

from gan_core.analysis import latent
from gan_core.models import dcgan_init
from gan_core.models.dcgan import DCGANGenerator


def test_sample_latents_seeded():
    a, b, c = (latent.sample_latents(64, 10, seed=s) for s in (1, 1, 2))
    assert a.shape == (64, 10) and torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.mean().item()) < 0.2 and abs(a.std().item() - 1) < 0.1  # standard normal
    with pytest.raises(ValueError, match="latent_dim > 0"):
        latent.sample_latents(4, 0, seed=1)


def _line_cloud(direction: torch.Tensor) -> torch.Tensor:
    """500 points spread 10x along ``direction`` (3,), with 0.1 noise: (500, 3)."""
    g = torch.Generator().manual_seed(0)
    along = torch.randn(500, 1, generator=g) * 10
    return along * direction + torch.randn(500, 3, generator=g) * 0.1 + torch.tensor([5.0, -2.0, 1.0])


def test_pca_recovers_dominant_direction():
    direction = torch.tensor([0.6, -0.8, 0.0])  # largest |entry| negative: the sign must flip
    x = _line_cloud(direction)
    projected, components, mean, ratio = latent.pca(x, k=2)
    assert projected.shape == (500, 2) and components.shape == (2, 3) and ratio.shape == (2,)
    assert torch.allclose(components[0], -direction, atol=0.01)  # largest entry made positive
    assert torch.allclose(components @ components.T, torch.eye(2), atol=1e-5)
    assert torch.allclose(mean, x.mean(0), atol=1e-4)
    assert ratio[0] > 0.99 and ratio.sum() <= 1 + 1e-6 and (ratio >= 0).all()
    assert torch.allclose(projected, (x - mean) @ components.T, atol=1e-3)


def test_pca_sign_convention_stable():
    x = _line_cloud(torch.tensor([0.6, 0.0, 0.8]))
    projected, first, _, _ = latent.pca(x, k=2)
    # -x has the same components up to sign, which the SVD is free to choose either way
    mirrored_projected, mirrored, _, _ = latent.pca(-x, k=2)
    assert torch.allclose(first, mirrored, atol=1e-5)
    assert torch.allclose(mirrored_projected, -projected, atol=1e-4)
    shuffled = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))]
    assert torch.allclose(latent.pca(shuffled, k=2)[1], first, atol=1e-5)
    assert (first.gather(1, first.abs().argmax(1, keepdim=True)) > 0).all()
    _, _, _, flat = latent.pca(torch.ones(4, 3), k=2)  # no variance: ratios 0, not NaN
    assert torch.equal(flat, torch.zeros(2))


def test_slerp_keeps_norm_where_lerp_shrinks():
    z = latent.sample_latents(2, 100, seed=3)
    z0, z1 = z[0], z[1] * z[0].norm() / z[1].norm()  # equal norms
    arc, line = latent.slerp(z0, z1, 9), latent.lerp(z0, z1, 9)
    assert arc.shape == line.shape == (9, 100)
    assert torch.allclose(arc[0], z0, atol=1e-5) and torch.allclose(arc[-1], z1, atol=1e-5)
    assert torch.allclose(line[0], z0) and torch.allclose(line[-1], z1)
    norms = arc.norm(dim=1)
    assert (norms >= z0.norm() * (1 - 1e-5)).all() and (norms <= z0.norm() * (1 + 1e-5)).all()
    assert line.norm(dim=1)[4] < 0.8 * z0.norm()  # independent Gaussians: midpoint ~ 1/sqrt(2)


@pytest.mark.parametrize("other", [lambda z: 2 * z, lambda z: z, lambda z: -z, lambda z: 0 * z])
def test_slerp_degenerate_pairs_finite(other):
    z0 = torch.tensor([1.0, 2.0, -0.5])
    path = latent.slerp(z0, other(z0), 5)
    assert torch.isfinite(path).all()
    assert torch.allclose(path[0], z0) and torch.allclose(path[-1], other(z0))


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
@pytest.mark.parametrize("mode", ["slerp", "linear"])
def test_interpolate_images(size, channels, mode):
    torch.manual_seed(0)
    g = DCGANGenerator(8, channels, size, ngf=4)
    g.apply(dcgan_init)
    z0, z1 = latent.sample_latents(2, 8, seed=0)
    images = latent.interpolate(g, z0, z1, 6, mode=mode)
    assert images.shape == (6, channels, size, size) and images.requires_grad is False
    assert g.training  # put back in train mode after sampling in eval mode
    with torch.no_grad():
        g.eval()
        assert torch.allclose(images[0], g(z0[None])[0], atol=1e-6)  # eval mode, not batch statistics
        g.train()
    by_fn = latent.interpolate(lambda z: torch.zeros(len(z), 1, 4, 4), z0, z1, 3)
    assert by_fn.shape == (3, 1, 4, 4)
    with pytest.raises(ValueError, match="mode"):
        latent.interpolate(g, z0, z1, 6, mode="cubic")


def test_image_features_shape_and_determinism():
    images = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = latent.image_features(images)
    assert features.shape == (5, 3 * 16 * 16)
    assert torch.equal(features, latent.image_features(images.clone()))
    assert torch.allclose(features[:, 0], images[:, 0, :4, :4].mean((1, 2)), atol=1e-6)  # 4x4 averages
    small = torch.rand(2, 1, 8, 12)
    assert torch.equal(latent.image_features(small), small.flatten(1))  # already small: unchanged
    assert latent.image_features(torch.rand(2, 1, 28, 28)).shape == (2, 256)


def test_nearest_neighbours_finds_exact_copies():
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(1000, 1, 28, 28, generator=g) * 2 - 1
    rows = [5, 999, 420, 0]
    queries = torch.cat([reference[rows], torch.rand(3, 1, 28, 28, generator=g) * 2 - 1])
    distances, indices = latent.nearest_neighbours(queries, reference, k=3, batch=128)  # 8 chunks
    assert distances.shape == indices.shape == (7, 3)
    assert indices[:4, 0].tolist() == rows and (distances[:4, 0] == 0).all()
    brute = torch.cdist(queries.flatten(1), reference.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
    values, expected = brute.topk(3, dim=1, largest=False)
    assert torch.equal(indices, expected) and torch.allclose(distances, values, atol=1e-4)
    assert (distances.diff(dim=1) >= 0).all()
    one_chunk = latent.nearest_neighbours(queries, reference, k=3, batch=5000)
    assert torch.equal(one_chunk[1], indices)
    with pytest.raises(ValueError, match="same shape|one shape"):
        latent.nearest_neighbours(queries, reference[:, :, :14], k=1)


def test_choose_extremes_spread_and_deterministic():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [-5.0, 0.1], [0.0, 4.0], [0.0, 4.0]])
    chosen = latent.choose_extremes(points, 3).tolist()
    assert chosen[:2] in ([2, 3], [3, 2]) and chosen[2] == 4  # the two ends of PC1, then PC2's
    assert chosen == latent.choose_extremes(points.clone(), 3).tolist()
    assert sorted(latent.choose_extremes(points, 6).tolist()) == list(range(6))  # distinct, duplicates too
    with pytest.raises(ValueError, match="n <= N"):
        latent.choose_extremes(points, 7)


def test_explorer_widgets_redraw_on_a_trained_run(tiny_config, tmp_path):
    """The explorer's widgets as notebook 08 builds them: it opens a trained run on its last
    checkpoint, and moving a slider, another checkpoint or the interpolation redraws the images."""
    pytest.importorskip("ipywidgets")
    from gan_core.reporting import explorer
    from gan_core.training import train
    train(tiny_config(), tmp_path / "runs" / "tiny", log=lambda line: None)
    ui = explorer.widgets(tmp_path / "runs")
    run_box, (epoch_box, _), sliders, _, grid, (seed_a, _, mode), strip, status = \
        ui.children[0], ui.children[1].children, ui.children[2].children, *ui.children[3:5], \
        ui.children[5].children, *ui.children[6:8]
    assert "drawn in" in status.value and grid.value[:4] == b"\x89PNG" and strip.value[:4] == b"\x89PNG"
    first_grid, first_strip = grid.value, strip.value
    sliders[0].value = 2.0
    assert grid.value != first_grid
    epoch_box.value = epoch_box.options[0][1]  # the first checkpoint: the same latents, earlier
    assert grid.value != first_grid
    seed_a.value = 7
    assert strip.value != first_strip
    mode.value = "linear"
    assert len(epoch_box.options) == 2 and run_box.value.root.name == "tiny"
