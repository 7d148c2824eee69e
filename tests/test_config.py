import dataclasses
import re

import pytest


from gan_core.config import Config, ConfigError, from_dict, load
from gan_core.families.gan import dcgan_base_size

from .conftest import REPO


def write(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


def test_defaults_and_override(tmp_path):
    config = load(write(tmp_path, "train:\n  batch_size: 32\noptim_g:\n  lr: 1e-3\n"))
    assert config.train.batch_size == 32
    assert config.optim_g.lr == 1e-3 and config.optim_d.lr == 2e-4
    assert config.optim_g.betas == (0.5, 0.999)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3


@pytest.mark.parametrize("text, message", [
    ("train:\n  batch_sise: 32\n", "x.yaml: unknown key train.batch_sise"),
    ("trian:\n  epochs: 1\n", "x.yaml: unknown key trian"),
    ("train:\n  batch_size: 0\n", "x.yaml: train.batch_size must be > 0 (got 0)"),
    ("train:\n  batch_size: -4\n", "train.batch_size must be > 0 (got -4)"),
    ("train:\n  batch_size: '64'\n", "train.batch_size must be an integer (got '64')"),
    ("train:\n  epochs: 2.5\n", "train.epochs must be an integer (got 2.5)"),
    ("optim_d:\n  lr: -0.1\n", "optim_d.lr must be > 0 (got -0.1)"),
    ("optim_d:\n  betas: [0.5]\n", "optim_d.betas must have 2 items"),
    ("optim_g:\n  name: rmsprop\n", "optim_g.name must be one of 'adam', 'sgd' (got 'rmsprop')"),
    ("model:\n  latent_dim: 0\n", "model.latent_dim must be > 0 (got 0)"),
    ("data:\n  name: imagenet\n", "data.name must be one of"),
    ("data:\n  name: imagefolder\n", "data.root must name the folder"),
    ("loss:\n  real_label: 1.5\n", "loss.real_label must be in (0, 1] (got 1.5)"),
    ("train:\n  precision: fp8\n", "train.precision must be one of"),
    ("train: 3\n", "train must be a mapping (got 3)"),
    ("loss: {kind: hinge, real_label: 0.9}\n", "loss.real_label must be 1.0 with the hinge loss"),
    ("model: {arch: mlp}\nmlp: {g_hidden: []}\n", "mlp.g_hidden must be widths > 0 (got [])"),
    ("model: {arch: mlp}\nmlp: {d_dropout: 1.0}\n", "mlp.d_dropout must be in [0, 1) (got 1.0)"),
    ("dcgan: {ndf: 0}\n", "dcgan.ndf must be > 0 (got 0)"),
    ("dcgan: {ngff: 8}\n", "unknown key dcgan.ngff (known: ngf, ndf, d_norm, spectral_norm)"),
    ("model: {ngf: 8}\n", "model.ngf is now dcgan.ngf"),
    ("loss: {r1: -1}\n", "loss.r1 must be >= 0 (got -1.0)"),
    ("train: {lr_decay: step}\n", "train.lr_decay must be one of 'none', 'linear', 'cosine' (got 'step')"),
    ("train: {ema_halflife: 2}\n", "train.ema_halflife must be a share in [0, 1] (got 2.0)"),
    ("model: {arch: resnet}\n", "model.arch must be one of 'dcgan', 'mlp', 'ddpm'"),
    ("train: {ema: 1.5}\n", "train.ema must be in [0, 1) (got 1.5)"),
    ("train: {n_critic: 0}\n", "train.n_critic must be > 0 (got 0)"),
    ("- 1\n", "expected a mapping of sections"),
    ("train: [\n", "not valid YAML"),
])
def test_errors_name_file_key_and_value(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "x.yaml"))


def test_missing_file():
    with pytest.raises(ConfigError, match="no such config file"):
        load("params/does-not-exist.yaml")


def test_hash_is_stable_and_sensitive():
    a = from_dict({"train": {"epochs": 3}})
    assert a.hash() == from_dict({"train": {"epochs": 3}}).hash() == a.replace({}).hash()
    assert a.hash() != a.replace({"train.epochs": 4}).hash()
    assert Config().hash() == Config().hash()


def test_replace_validates():
    with pytest.raises(ConfigError, match="sweep: train.batch_size must be > 0"):
        Config().replace({"train.batch_size": 0}, "sweep")


@pytest.mark.parametrize("text, message", [
    ("data:\n  image_size: 48\n", "data.image_size must be a size a DCGAN can build: 4·2^n or 7·2^n pixels"),
    ("loss: {kind: wgan-gp}\n", "dcgan.d_norm must be layer or none with wgan-gp"),
    ("model: {arch: ddpm}\ndiffusion: {width_mults: [1, 2, 2, 2]}\n",
     "diffusion.width_mults must allow halving data.image_size = 28 3 times with model.arch ddpm"),
])
def test_each_family_refuses_what_it_cannot_build(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert message in str(err.value) and str(err.value).startswith(str(path))


@pytest.mark.parametrize("arch, size, ok", [("dcgan", 8, False), ("mlp", 8, True), ("mlp", 48, True),
                                            ("ddpm", 8, True), ("ddpm", 14, False)])
def test_image_sizes_are_per_family(arch, size, ok):
    """The DCGAN rule holds for DCGANs only: an MLP builds digits at their native 8x8."""
    raw = {"model": {"arch": arch}, "data": {"name": "digits", "image_size": size}}
    if ok:
        assert from_dict(raw).data.image_size == size
    else:
        with pytest.raises(ConfigError, match="data.image_size|diffusion.width_mults"):
            from_dict(raw)


@pytest.mark.parametrize("size, base", [(28, 7), (32, 4), (64, 4), (128, 4), (256, 4), (48, None), (16, 4), (14, None), (8, None)])
def test_dcgan_sizes(size, base):
    assert dcgan_base_size(size) == base


def test_presets_validate():
    presets = sorted((REPO / "params").glob("*.yaml"))
    assert {p.stem for p in presets} >= {"smoke", "quick"}
    for path in presets:
        load(path)


def test_override_errors_name_the_override(tmp_path):
    with pytest.raises(ConfigError, match=r"x.yaml with --set train.batchsize: unknown key train.batchsize"):
        load(write(tmp_path, "train:\n  epochs: 1\n"), {"train.batchsize": 64})


@pytest.mark.parametrize("diffusion, message", [
    ({"timesteps": 10}, "diffusion.timesteps must be > 20 for the linear schedule"),
    ({"timesteps": 150, "sample_steps": 200}, "diffusion.sample_steps must be in [1, diffusion.timesteps = 150]"),
    ({"guidance": 2.0}, "diffusion.guidance needs model.conditional: true"),
])
def test_diffusion_values_are_checked(diffusion, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict({"model": {"arch": "ddpm"}, "diffusion": diffusion}, "x.yaml")


def test_an_older_runs_former_default_evaluator_epochs_still_loads():
    """Runs written before eval.evaluator_epochs became null hold its former default, 3: they
    load (resume, re-render, evaluate) as before; any other value is still refused for a shipped evaluator."""
    assert from_dict({"eval": {"evaluator_epochs": 3}}).eval.evaluator_epochs is None
    assert from_dict({"data": {"name": "mnist"}, "eval": {"evaluator_epochs": 3}}).eval.evaluator_epochs == 3
    with pytest.raises(ConfigError, match="eval.evaluator_epochs sets how an evaluator is trained here"):
        from_dict({"eval": {"evaluator_epochs": 4}})
