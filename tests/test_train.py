import csv
import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gan_core.analysis.latent import class_samples
from gan_core.config import ConfigError
from gan_core.models import CheckpointError, load_family, read_checkpoint
from gan_core.models import base as models_base
from gan_core.training import Trainer, TrainingError, read_log, train


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_d_step_leaves_g_untouched(tiny_config, tmp_path):
    """The GAN's own D step, on fakes made with gradients on: G's weights and grads stay as they were."""
    trainer = Trainer(tiny_config(), tmp_path)
    family = trainer.family
    G, D = family.generator, family.discriminator
    real = family.precision.batch(torch.rand(16, 1, 28, 28) * 2 - 1)
    fake = G(torch.randn(16, 8))  # as in training_step: made with gradients, detached for the D step
    g_before, d_before = weights(G), weights(D)  # after G's pass, which moves its BatchNorm statistics
    family._d_step(real, fake.detach(), None, 0.0, trainer.ctx)
    assert all(p.grad is None for p in G.parameters())
    assert same_weights(weights(G), g_before)
    assert not same_weights(weights(D), d_before)


def test_train_step_updates_both_and_reports(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(), tmp_path)
    G, D = trainer.family.generator, trainer.family.discriminator
    g_before, d_before = weights(G), weights(D)
    stats = trainer.train_step(trainer.data.images[:16])
    assert stats.shape == (7,) and torch.isfinite(stats).all()
    assert ((stats[2:] >= 0) & (stats[2:] <= 1)).all()  # probabilities and accuracies
    assert not same_weights(weights(G), g_before)
    assert not same_weights(weights(D), d_before)
    assert all(p.requires_grad for p in D.parameters())


def test_smoke_training_writes_run_dir(tiny_config, tmp_path):
    metrics = train(tiny_config(), tmp_path / "run", log=lambda s: None)
    run = tmp_path / "run"
    rows = read_log(run / "log.csv")
    assert len(rows) == 4 and rows[-1]["step"] == 8 and rows[-1]["epoch"] == 2
    assert {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_g", "acc_real", "acc_fake", "images_per_s"} <= rows[0].keys()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert (run / "checkpoints" / "last.pt").exists() and (run / "config.yaml").exists()
    assert metrics["training"]["steps"] == 8
    grid = np.asarray(Image.open(run / "samples" / "epoch_002.png").convert("L"), dtype=float)
    assert grid.std() > 5  # not blank


def test_same_seed_same_log(tiny_config, tmp_path):
    config = tiny_config()
    train(config, tmp_path / "a", log=lambda s: None)
    train(config, tmp_path / "b", log=lambda s: None)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("images_per_s", "time_s")} for r in rows]
    assert strip(read_log(tmp_path / "a" / "log.csv")) == strip(read_log(tmp_path / "b" / "log.csv"))
    other = tiny_config(train={"seed": 1})
    train(other, tmp_path / "c", log=lambda s: None)
    assert strip(read_log(tmp_path / "c" / "log.csv")) != strip(read_log(tmp_path / "a" / "log.csv"))


FAMILIES = {
    "dcgan-bce": {},
    "mlp-hinge": {"model": {"arch": "mlp"}, "mlp": {"g_hidden": [32, 64], "d_hidden": [64, 32], "d_dropout": 0.3},
                  "loss": {"kind": "hinge"}},
    "dcgan-lsgan-ema": {"loss": {"kind": "mse", "real_label": 0.9}, "train": {"ema": 0.9}},
    "dcgan-wgan-gp": {"dcgan": {"d_norm": "layer"}, "loss": {"kind": "wgan-gp"}, "train": {"n_critic": 3},
                      "optim_d": {"betas": [0.0, 0.9]}, "optim_g": {"betas": [0.0, 0.9]}},
    "dcgan-conditional": {"model": {"conditional": True}},
    "mlp-conditional-embedding-noise": {"model": {"arch": "mlp", "conditional": True, "embed_dim": 4},
                                        "mlp": {"g_hidden": [32], "d_hidden": [32]},
                                        "train": {"instance_noise": 0.2}},
    "ddpm": {"model": {"arch": "ddpm"}, "diffusion": {"timesteps": 30, "base_width": 8, "sample_steps": 4}},
    "ddpm-conditional-ema": {"model": {"arch": "ddpm", "conditional": True}, "train": {"ema": 0.9},
                             "diffusion": {"timesteps": 30, "base_width": 8, "width_mults": [1, 2], "eta": 0.5}},
}


def assert_same_run(a_dir, b_dir, ema=False):
    a = read_checkpoint(a_dir / "checkpoints" / "last.pt")
    b = read_checkpoint(b_dir / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"]
    for key in ("generator", "discriminator", "generator_ema"):
        assert (key in a) == (key in b) and (key not in a or same_weights(a[key], b[key]))
    assert ("generator_ema" in a) == ema


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_equals_uninterrupted(tiny_config, tmp_path, family, monkeypatch):
    config = tiny_config(**{k: dict(v) for k, v in FAMILIES[family].items()})  # 3 epochs of 4 steps
    config = config.replace({"train.epochs": 3})
    train(config, tmp_path / "straight", log=lambda s: None)
    step, calls = Trainer.train_step, []
    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 7:  # mid epoch 2, after its first log row: those rows must be dropped and redone
            raise KeyboardInterrupt
        return step(self, *args)
    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", log=lambda s: None)
    monkeypatch.setattr(Trainer, "train_step", step)
    assert read_log(tmp_path / "resumed" / "log.csv")[-1]["step"] == 6
    train(config, tmp_path / "resumed", resume=True, log=lambda s: None)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", ema="ema" in family)
    strip = lambda p: [{k: v for k, v in r.items() if k not in ("images_per_s", "time_s")} for r in read_log(p)]
    assert strip(tmp_path / "straight" / "log.csv") == strip(tmp_path / "resumed" / "log.csv")


def test_longer_training_continues_a_shorter_run(tiny_config, tmp_path):
    """train.epochs may grow between sessions: 1 epoch, then on to 3, equals 3 straight."""
    full = tiny_config(train={"epochs": 3})
    train(full, tmp_path / "straight", log=lambda s: None)
    train(tiny_config(train={"epochs": 1}), tmp_path / "resumed", log=lambda s: None)
    train(full, tmp_path / "resumed", resume=True, log=lambda s: None)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_existing_run_needs_resume(tiny_config, tmp_path):
    train(tiny_config(train={"epochs": 1}), tmp_path, log=lambda s: None)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(tiny_config(), tmp_path, resume=False, log=lambda s: None)


def test_resume_refuses_other_config(tiny_config, tmp_path):
    train(tiny_config(train={"epochs": 1}), tmp_path, log=lambda s: None)
    with pytest.raises(TrainingError, match=r"another config \(dcgan.ngf: 4 -> 8\)"):
        train(tiny_config(dcgan={"ngf": 8}), tmp_path, log=lambda s: None)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "not-a-checkpoint"])
def test_corrupt_checkpoint_is_refused(tiny_config, tmp_path, damage):
    train(tiny_config(train={"epochs": 1}), tmp_path, log=lambda s: None)
    path = tmp_path / "checkpoints" / "last.pt"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00junk" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"generator": {}}, path)
    with pytest.raises(TrainingError, match="last.pt"):
        train(tiny_config(), tmp_path, log=lambda s: None)


def test_unreadable_last_falls_back_to_the_previous_checkpoint(tiny_config, tmp_path):
    """A truncated last.pt: --resume goes on from previous.pt (one epoch earlier), says so, keeps
    the bad file renamed beside it, and ends where an uninterrupted run ends."""
    train(tiny_config(train={"epochs": 2}), tmp_path / "cut", log=lambda s: None)
    last = tmp_path / "cut" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    lines = []
    train(tiny_config(train={"epochs": 3}), tmp_path / "cut", log=lines.append)
    assert any("previous.pt" in line for line in lines), lines
    assert list((tmp_path / "cut" / "checkpoints").glob("last.corrupt-*.pt"))
    train(tiny_config(train={"epochs": 3}), tmp_path / "whole", log=lambda s: None)
    cut, whole = read_log(tmp_path / "cut" / "log.csv"), read_log(tmp_path / "whole" / "log.csv")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("images_per_s", "time_s")} for r in rows]
    assert strip(cut) == strip(whole)


def test_the_epoch_snapshot_is_written_before_last(tiny_config, tmp_path, monkeypatch):
    """A kill between the two writes never loses an epoch's snapshot: it is written first."""
    from gan_core.training import trainer as trainer_module
    order = []
    real_write = trainer_module.write_checkpoint
    monkeypatch.setattr(trainer_module, "write_checkpoint", lambda state, path: (order.append(path.name),
                                                                                  real_write(state, path)))
    real_last = trainer_module.state_lib.write_last
    monkeypatch.setattr(trainer_module.state_lib, "write_last", lambda run, state: (order.append("last.pt"),
                                                                                    real_last(run, state)))
    train(tiny_config(train={"epochs": 1}), tmp_path, log=lambda s: None)
    assert order.index("epoch_001.pt") < order.index("last.pt")


def test_a_pickle_the_safe_loader_refuses_is_called_unsafe(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"generator": {}, "payload": Image.new("L", (1, 1))}, path)  # not tensors or plain data
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert "may be unsafe" in str(err.value) and "weights_only=False" not in str(err.value)


def test_nan_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(train={"epochs": 3}), tmp_path)
    trainer.fit()
    good = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    trainer = Trainer(tiny_config(train={"epochs": 4}), tmp_path)
    trainer.resume()
    with torch.no_grad():
        trainer.family.generator.net[-2].weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="non-finite.*epoch 4.*last good checkpoint.*epoch 3"):
        trainer.fit()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == good
    with open(tmp_path / "log.csv") as f:
        assert "nan" in list(csv.reader(f))[-1]


def test_bf16_autocast_trains(tiny_config, tmp_path):
    metrics = train(tiny_config(train={"precision": "bf16", "channels_last": True, "epochs": 1}),
                    tmp_path, log=lambda s: None)
    assert math.isfinite(metrics["training"]["final_loss_d"])


@pytest.mark.parametrize("native, asked, picked", [
    (True, ("auto", "auto"), "bf16 + channels_last (auto: CPU has avx512_bf16; channels_last auto: measured faster"),
    (False, ("auto", "auto"), "fp32 + channels_last (auto: CPU has no native bf16"),
    (False, ("bf16", False), "bf16 (CPU has no native bf16 (no avx512_bf16/amx): emulated, expect it slower"),
    (True, ("fp32", False), "fp32"),
])
def test_precision_auto_follows_the_hardware(tiny_config, tmp_path, monkeypatch, native, asked, picked):
    """auto is bf16 only where bf16 is native, channels_last where the family is measured faster
    with it (the DCGAN, fp32 too); it is said in the first line, config.yaml and metrics.json,
    and an emulated bf16 warns."""
    why = "CPU has avx512_bf16" if native else "CPU has no native bf16 (no avx512_bf16/amx)"
    monkeypatch.setattr(models_base, "native_bf16", lambda device: (native, why))
    config = tiny_config(train={"precision": asked[0], "channels_last": asked[1], "epochs": 1})
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(config, tmp_path, log=lines.append)["training"]
    assert metrics["precision"].startswith(picked) and picked in lines[0]
    assert picked in (tmp_path / "config.yaml").read_text().splitlines()[0]
    assert any("emulated" in str(w.message) for w in caught) == ("emulated" in picked)


def test_native_bf16_reads_the_cpu_flags():
    native, why = models_base.native_bf16(torch.device("cpu"))
    flags = open("/proc/cpuinfo").read()
    assert native == any(f in flags for f in models_base.CPU_BF16_FLAGS) and why.startswith("CPU ")


def test_fp16_needs_cuda(tiny_config, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(TrainingError, match="fp16 needs CUDA"):
        Trainer(tiny_config(train={"precision": "fp16"}), tmp_path)


def test_ema_averages_generator_weights(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(train={"ema": 0.5}), tmp_path)
    G, ema = trainer.family.generator, trainer.family.averaged
    key = "net.0.weight"
    before = weights(G)
    trainer.train_step(trainer.data.images[:16])  # step 0: the warm-up decay (1 + 0) / (10 + 0) = 0.1
    assert torch.allclose(weights(ema)[key], 0.1 * before[key] + 0.9 * weights(G)[key])
    trainer.step = 100  # past the warm-up: train.ema
    before = weights(ema)
    trainer.train_step(trainer.data.images[:16])
    after, averaged = weights(G), weights(ema)
    assert torch.allclose(averaged[key], 0.5 * before[key] + 0.5 * after[key])
    assert not torch.equal(averaged[key], after[key])
    assert torch.equal(averaged["net.1.running_mean"], after["net.1.running_mean"])
    trainer.save_checkpoint()
    family, _ = load_family(tmp_path / "checkpoints" / "last.pt")
    assert torch.equal(family.sampler.state_dict()[key], averaged[key])  # samples come from the average


def test_n_critic_steps_g_every_nth_batch(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(dcgan={"d_norm": "none"}, loss={"kind": "wgan-gp"}, train={"n_critic": 3}), tmp_path)
    real = trainer.data.images[:16]
    g_weights = []
    for step in range(6):
        trainer.step = step  # as the loop counts
        trainer.train_step(real)
        g_weights.append(weights(trainer.family.generator)["net.0.weight"])
    changed = [not torch.equal(a, b) for a, b in zip(g_weights, g_weights[1:])]
    assert changed == [False, True, False, False, True]  # G steps after D steps 3 and 6


def test_restart_without_checkpoint_does_not_duplicate_log_rows(tiny_config, tmp_path):
    train(tiny_config(train={"epochs": 1}), tmp_path / "a", log=lambda s: None)
    (tmp_path / "b").mkdir()
    # an interrupted first epoch: log rows written, no checkpoint yet
    (tmp_path / "b" / "log.csv").write_text((tmp_path / "a" / "log.csv").read_text())
    lines = []
    train(tiny_config(train={"epochs": 1}), tmp_path / "b", resume=True, log=lines.append)
    steps = [r["step"] for r in read_log(tmp_path / "b" / "log.csv")]
    assert steps == sorted(set(steps)) == [r["step"] for r in read_log(tmp_path / "a" / "log.csv")]
    assert any("starting from scratch" in line for line in lines)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*last.pt"):
        read_checkpoint(tmp_path / "checkpoints" / "last.pt")


def test_checkpoint_from_before_a_key_existed_resumes(tiny_config, tmp_path):
    train(tiny_config(train={"epochs": 1}), tmp_path, log=lambda s: None)
    path = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["train"]["ema"], state["config"]["loss"]["gp_weight"]  # as an older gan_core wrote it
    torch.save(state, path)
    assert train(tiny_config(train={"epochs": 2}), tmp_path, log=lambda s: None)["training"]["epochs"] == 2
    state["config"]["train"]["ema"] = 0.5  # a real difference is still refused
    torch.save(state, path)
    with pytest.raises(TrainingError, match=r"another config \(train.ema: 0.5 -> 0.0\)"):
        train(tiny_config(train={"epochs": 3}), tmp_path, log=lambda s: None)


def test_conditional_grid_has_one_row_per_class(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(model={"conditional": True}), tmp_path)  # 16 samples, 10 classes
    assert trainer.grid_columns == 2 and trainer.fixed_y.tolist() == [k for k in range(10) for _ in range(2)]
    assert torch.equal(trainer.fixed_z[0], trainer.fixed_z[2])  # each column: one z across the classes
    kept = Trainer(tiny_config(model={"conditional": True}, data={"classes": [7, 9], "subset": None}), tmp_path / "b")
    assert kept.fixed_y.tolist() == [7] * 8 + [9] * 8 and kept.grid_columns == 8
    three = Trainer(tiny_config(model={"conditional": True}, data={"classes": [1, 3, 7], "subset": None},
                                train={"num_samples": 64}), tmp_path / "c")
    assert three.grid_columns == 10 and len(three.fixed_y) == 30  # 3 rows of 10, not a 3 x 22 strip
    trainer.fit()
    family, _ = load_family(tmp_path / "checkpoints" / "last.pt")
    assert family.label.names == tuple(trainer.data.classes)
    images = class_samples(family, 1, 4, seed=0)
    assert images.shape == (4, 1, 28, 28) and torch.equal(images, class_samples(family, 1, 4, seed=0))


def test_instance_noise_anneals_to_zero(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(train={"instance_noise": 0.5}), tmp_path)
    seen, step = [], trainer.family.training_step
    trainer.family.training_step = lambda real, labels, ctx: seen.append(ctx.progress) or step(real, labels, ctx)
    for at in (0, trainer.steps_per_epoch, 2 * trainer.steps_per_epoch):  # start, half way, the end of 2 epochs
        trainer.step = at
        trainer.train_step(trainer.data.images[:16])
    assert seen == [0.0, 0.5, 1.0]  # the share of training done, as the trainer passes it
    assert [trainer.family._instance_noise(p) for p in seen] == [0.5, 0.25, 0.0]
    assert Trainer(tiny_config(), tmp_path / "off").family._instance_noise(0.0) == 0.0


def test_tensorboard_holds_the_logged_values_and_grids(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    config = tiny_config(train={"tensorboard": True, "epochs": 1})
    train(config, tmp_path, log=lambda s: None)
    train(config.replace({"train.epochs": 2}), tmp_path, log=lambda s: None)  # resumed: appends, no repeats
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    log = pd.read_csv(tmp_path / "log.csv")
    d_loss = events.Scalars("loss/D loss")
    assert [e.step for e in d_loss] == log["step"].tolist()
    assert np.allclose([e.value for e in d_loss], log["loss_d"], rtol=1e-4)
    assert "discriminator/real accuracy" in events.Tags()["scalars"]
    grids = events.Images("samples/fixed noise")
    assert [g.step for g in grids] == [log["step"].iloc[len(log) // 2 - 1], log["step"].iloc[-1]]  # one per epoch
    assert grids[-1].width == grids[-1].height > 28


def test_tensorboard_without_its_package_is_refused_before_work(tiny_config, tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match=r"train.tensorboard: true needs the tensorboard package.*"
                                          r"gan-workbook\[tensorboard\]"):
        train(tiny_config(train={"tensorboard": True}), tmp_path / "run", log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_ema_halflife_grows_with_the_images_seen(tiny_config, tmp_path):
    """train.ema_halflife: the average's half-life is that share of the images seen so far."""
    trainer = Trainer(tiny_config(train={"ema_halflife": 0.5}), tmp_path)  # batches of 16
    G, averaged, key = trainer.family.generator, trainer.family.averaged, "net.0.weight"
    for step, images in ((0, 16), (99, 1600)):
        trainer.step = step
        before = weights(averaged)
        trainer.train_step(trainer.data.images[:16])
        keep = 0.5 ** (16 / (0.5 * images))  # 0.25 at the first step: the average follows G closely
        assert torch.allclose(weights(averaged)[key], keep * before[key] + (1 - keep) * weights(G)[key], atol=1e-6)
    with pytest.raises(ConfigError, match="train.ema_halflife .* both set the average"):
        tiny_config(train={"ema": 0.9, "ema_halflife": 0.05})


@pytest.mark.parametrize("kind, factors", [("linear", [1.0, 0.5, 1 / 8]), ("cosine", [1.0, 0.5, 0.0380602])])
def test_lr_decays_to_the_end_of_the_budget(tiny_config, tmp_path, kind, factors):
    trainer = Trainer(tiny_config(train={"lr_decay": kind, "epochs": 2}), tmp_path)  # 8 steps of 16
    seen = []
    for step in (0, 4, 7):
        trainer.step = step
        trainer.train_step(trainer.data.images[:16])
        seen.append([g["lr"] / 2e-4 for opt in trainer.ctx.optimizers.values() for g in opt.param_groups])
    assert [s[0] for s in seen] == pytest.approx(factors, abs=1e-6) and all(len(set(s)) == 1 for s in seen)


def test_grad_clip_bounds_each_update(tiny_config, tmp_path):
    sgd = {"name": "sgd", "lr": 0.1}
    trainer = Trainer(tiny_config(train={"grad_clip": 1e-4}, optim_d=sgd, optim_g=sgd), tmp_path)
    D = trainer.family.networks["discriminator"]
    before = torch.cat([p.detach().flatten().clone() for p in D.parameters()])
    trainer.train_step(trainer.data.images[:16])
    after = torch.cat([p.detach().flatten() for p in D.parameters()])
    assert 0 < (after - before).norm() <= 0.1 * 1e-4 * 1.001  # lr times the clipped gradient norm


def test_spectral_norm_and_r1(tiny_config, tmp_path, monkeypatch):
    """dcgan.spectral_norm bounds D's layers; loss.r1 adds R1 every loss.r1_every D steps."""
    from gan_core.models import gan
    calls = []
    real_r1 = gan.r1_penalty
    monkeypatch.setattr(gan, "r1_penalty", lambda logits, x: calls.append(x.requires_grad) or real_r1(logits, x))
    config = tiny_config(dcgan={"spectral_norm": True, "d_norm": "none"}, loss={"r1": 1.0, "r1_every": 2})
    trainer = Trainer(config, tmp_path)
    D = trainer.family.networks["discriminator"]
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    for step in range(4):
        trainer.step = step
        trainer.train_step(trainer.data.images[:16])
    assert calls == [True, True]  # steps 0 and 2
    for m in convs:  # after a few power iterations the largest singular value is about 1
        assert float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) == pytest.approx(1.0, abs=0.1)
    assert "spectral norm, R1 1" in trainer.family.summary()
    trainer.save_checkpoint()
    assert load_family(tmp_path / "checkpoints" / "last.pt")[0].sample(2).shape == (2, 1, 28, 28)


@pytest.mark.slow
def test_compile_trains_the_same_networks(tiny_config, tmp_path):
    """train.compile: torch.compile in place; the checkpoint's keys are the plain networks'. The
    config a user sets (precision and layout auto) trains in NCHW: manual channels_last under
    compile crashed inductor's convolution backward on CUDA (issue 34)."""
    compiled = train(tiny_config(train={"compile": True, "epochs": 1, "precision": "auto", "channels_last": "auto"}),
                     tmp_path / "a", log=lambda s: None)
    assert "channels_last off under train.compile" in compiled["training"]["precision"]
    train(tiny_config(train={"epochs": 1}), tmp_path / "b", log=lambda s: None)
    a = read_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["generator"].keys() == b["generator"].keys() and a["epoch"] == 1


def test_an_interrupted_epoch_resumes_where_it_stopped(tiny_config, tmp_path, monkeypatch, request):
    """Ctrl-C (a kernel's stop button sends the same SIGINT) stops after the step under way and
    saves a checkpoint there; training again ends with the weights of an uninterrupted run."""
    import os
    import signal
    # Ctrl-C as a terminal delivers it: Python's handler, even where this test process was started
    # with SIGINT ignored (a background job of a shell), which the trainer leaves as it is
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    config = tiny_config(train={"epochs": 2})
    train(config, tmp_path / "whole", log=lambda s: None)
    step = Trainer.train_step

    def interrupting(self, real, labels=None):
        if self.step == 5:  # in epoch 2 (4 steps an epoch), after its first step
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, real, labels)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", log=lines.append)
    assert read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["step"] == 6
    assert any("interrupted at step 6 of epoch 2" in line for line in lines)
    monkeypatch.setattr(Trainer, "train_step", step)
    train(config, tmp_path / "cut", log=lambda s: None)
    assert_same_run_weights(tmp_path / "whole", tmp_path / "cut")


def assert_same_run_weights(a_dir, b_dir):
    a = read_checkpoint(a_dir / "checkpoints" / "last.pt")
    b = read_checkpoint(b_dir / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] and same_weights(a["generator"], b["generator"])
    assert same_weights(a["discriminator"], b["discriminator"])


@pytest.mark.slow
def test_the_kernels_stop_button_leaves_a_resumable_checkpoint(tiny_config, tmp_path):
    """Training started in a kernel (as notebook 02 in JupyterLab), stopped with the kernel's
    interrupt, resumes from the step it stopped at."""
    import yaml
    from jupyter_client.manager import start_new_kernel
    config = tiny_config(train={"epochs": 200})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config.to_dict()))
    km, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = ("from gan_core.config import load\nfrom gan_core.training import train\n"
                f"train(load({str(tmp_path / 'c.yaml')!r}), 'run', progress=True)")
        msg_id = client.execute(code)
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "checkpoints" / "last.pt").exists():  # an epoch or more done
            assert time.monotonic() < deadline
            time.sleep(0.2)
        km.interrupt_kernel()
        reply = client.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = client.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        km.shutdown_kernel(now=True)
    stopped = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert 0 < stopped["epoch"] < 200
    resumed = Trainer(config.replace({"train.epochs": stopped["epoch"] + 1}), tmp_path / "run")
    assert resumed.resume(log=lambda s: None) and resumed.step == stopped["step"]


def test_a_budget_in_steps_ends_part_way_through_an_epoch(tiny_config, tmp_path):
    """train.steps: the run trains that many steps (4 an epoch here, so 6 end half-way through
    epoch 2), its learning rate decays to that horizon, and it counts as complete."""
    from gan_core.rundir import RunDir
    metrics = train(tiny_config(train={"steps": 6, "lr_decay": "linear"}), tmp_path, log=lambda s: None)["training"]
    assert metrics["steps"] == metrics["total_steps"] == 6 and metrics["epochs"] == 2
    assert [r["step"] for r in read_log(tmp_path / "log.csv")][-1] == 6
    assert read_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 6
    assert [p.name for p in RunDir(tmp_path).snapshots()] == ["epoch_001.pt", "epoch_002.pt"]
    assert RunDir(tmp_path).require_trained()["steps"] == 6
