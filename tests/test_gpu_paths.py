"""The GPU's path, held on the CPU (issue 34): no host read inside a training step, ``auto``
precision chosen by measurement on CUDA (here with a mocked timer), no manual channels_last
under ``train.compile``, in-memory data batched where it trains. The figures on a GPU are
``benchmarks/gpu_check.sh``'s."""
import json
import sys
from pathlib import Path

import pytest
import torch

from gan_core.data import load_data
from gan_core.models import Precision
from gan_core.models import base as models_base
from gan_core.training import Trainer, read_log
from gan_core.training import tuning

from .conftest import REPO
from .test_families import FAMILY_CONFIGS

# tensor methods that read a value back to the host: on a GPU each waits for every queued kernel
HOST_READS = ("item", "tolist", "cpu", "numpy", "__array__", "__bool__", "__float__", "__int__", "__index__",
              "__format__")


class HostReads:
    """Calls of ``HOST_READS`` made by this checkout's code (gan_core, the tests; not torch's own,
    e.g. Adam reading its step count, which lives on the CPU), split into those inside
    ``Trainer._train_epoch`` outside its log rows (``in_steps``) and inside the log rows."""

    def __init__(self, monkeypatch):
        self.in_steps, self.in_rows, self.rows, self.where = [], [], 0, None
        for name in HOST_READS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(name, getattr(torch.Tensor, name)))
        epoch, log_row = Trainer._train_epoch, Trainer._log_row

        def train_epoch(trainer, *args, **kwargs):
            self.where = self.in_steps
            try:
                return epoch(trainer, *args, **kwargs)
            finally:
                self.where = None

        def row(trainer, *args, **kwargs):
            self.where, self.rows = self.in_rows, self.rows + 1
            try:
                return log_row(trainer, *args, **kwargs)
            finally:
                self.where = self.in_steps

        monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)
        monkeypatch.setattr(Trainer, "_log_row", row)

    def _counted(self, name, original):
        def method(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if self.where is not None and Path(caller).is_relative_to(REPO) and "site-packages" not in caller:  # not a .venv inside it
                self.where.append(f"{name} at {Path(caller).name}:{sys._getframe(1).f_lineno}")
            return original(tensor, *args, **kwargs)
        return method


SYNC_CONFIGS = {
    **FAMILY_CONFIGS,
    "ddpm-conditional": {"model": {"arch": "ddpm", "conditional": True},
                         "diffusion": {"timesteps": 30, "base_width": 8, "sample_steps": 4, "p_uncond": 0.2},
                         "data": {"image_size": 16}},
    "wgan-gp, n_critic 2": {"loss": {"kind": "wgan-gp"}, "dcgan": {"d_norm": "layer"}, "train": {"n_critic": 2}},
    "r1, spectral norm, instance noise": {"loss": {"r1": 1.0, "r1_every": 2}, "dcgan": {"spectral_norm": True},
                                          "train": {"instance_noise": 0.1}},
    "ema, lr decay, clipping, bf16": {"train": {"ema_halflife": 0.05, "lr_decay": "cosine", "grad_clip": 1.0,
                                                "precision": "bf16", "channels_last": True}},
}


@pytest.mark.parametrize("name", SYNC_CONFIGS)
def test_a_training_step_reads_nothing_back_to_the_host(tiny_config, tmp_path, monkeypatch, name):
    """Every family and training option: losses and D's outputs stay on the device, read once
    per log row (log_every steps), never inside a step."""
    sections = SYNC_CONFIGS[name]
    config = tiny_config(**{**sections, "train": {**sections.get("train", {}), "log_every": 3}})
    reads = HostReads(monkeypatch)
    Trainer(config, tmp_path).fit()
    steps = len(read_log(tmp_path / "log.csv"))
    assert reads.in_steps == [], f"host reads inside training steps: {reads.in_steps}"
    assert reads.rows == steps and len(reads.in_rows) == reads.rows  # one read (means.tolist()) per row


def test_a_host_read_in_a_step_is_caught(tiny_config, tmp_path, monkeypatch):
    """The check above can fail: a family whose step reads its loss is named, once per step."""
    config = tiny_config(train={"epochs": 1, "log_every": 4})
    reads = HostReads(monkeypatch)
    trainer = Trainer(config, tmp_path)
    step = trainer.family.training_step

    def reading_step(real, labels, ctx):
        values = step(real, labels, ctx)
        float(values["loss_d"])
        return values

    monkeypatch.setattr(trainer.family, "training_step", reading_step)
    trainer.fit()
    assert reads.in_steps == ["__float__ at test_gpu_paths.py:%d" % (reading_step.__code__.co_firstlineno + 2)] \
        * trainer.total_steps


# --- auto precision on CUDA, by measurement ---------------------------------------------------------
CUDA = torch.device("cuda")


@pytest.fixture
def on_cuda(monkeypatch):
    """``tuning`` as on a CUDA device with native bf16 (the names and checks it asks torch for)."""
    monkeypatch.setattr(models_base, "native_bf16", lambda device: (True, "NVIDIA H200 supports bf16"))
    monkeypatch.setattr(tuning, "device_name", lambda device: "NVIDIA H200")


def timer(ms, calls):
    """A ``Measure`` that returns the given milliseconds per candidate and notes each call."""
    def measure(config, shape, classes, candidates):
        calls.append([c.name for c in candidates])
        return {c.name: ms[c.name] for c in candidates}
    return measure


MEASURED = {"fp32/TF32": 1.7, "fp32/TF32 + channels_last": 1.9, "bf16": 2.1, "bf16 + channels_last": 2.3}


@pytest.mark.parametrize("ms, picked", [
    (MEASURED, "fp32/TF32"),  # the H200's DCGANs: bf16 + channels_last slower
    ({**MEASURED, "bf16 + channels_last": 1.0}, "bf16 + channels_last"),
    ({**MEASURED, "fp32/TF32 + channels_last": 1.65}, "fp32/TF32"),  # 3 % faster: within noise, fp32 stays
    ({**MEASURED, "bf16": 1.5}, "bf16"),
])
def test_auto_on_cuda_picks_the_fastest_candidate_never_slower_than_fp32(tiny_config, tmp_path, on_cuda, ms,
                                                                         picked):
    config = tiny_config(train={"precision": "auto", "channels_last": "auto"}, eval={"cache_dir": str(tmp_path)})
    calls = []
    chosen = tuning.choose_precision(config, (1, 28, 28), (), CUDA, timer(ms, calls))
    assert calls == [list(MEASURED)]  # fp32/TF32 first: the reference
    assert chosen.name == picked and chosen.device == CUDA and chosen.tf32
    figures = ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items())
    assert chosen.note == f"{picked} (auto, measured on NVIDIA H200: {figures} per step: {picked})"


def test_the_measurement_is_cached_per_model_shape_and_device(tiny_config, tmp_path, on_cuda):
    config = tiny_config(train={"precision": "auto", "channels_last": "auto"}, eval={"cache_dir": str(tmp_path)})
    calls = []
    measure = timer(MEASURED, calls)
    first = tuning.choose_precision(config, (1, 28, 28), (), CUDA, measure)
    again = tuning.choose_precision(config, (1, 28, 28), (), CUDA, measure)
    assert len(calls) == 1 and again.name == first.name and "(auto, cached on NVIDIA H200: fp32/TF32 1.70 ms" in again.note
    wider = tiny_config(dcgan={"ngf": 8}, train={"precision": "auto", "channels_last": "auto"},
                        eval={"cache_dir": str(tmp_path)})
    tuning.choose_precision(wider, (1, 28, 28), (), CUDA, measure)
    tuning.choose_precision(config, (1, 32, 32), (), CUDA, measure)
    assert len(calls) == 3  # another model, another image shape: measured anew
    entries = json.loads((tmp_path / tuning.CACHE_FILE).read_text())
    assert len(entries) == 3 and all(k.startswith("NVIDIA H200 | torch ") for k in entries)
    assert entries[tuning.tuning_key(config, (1, 28, 28), (), CUDA)]["ms"] == MEASURED


@pytest.mark.parametrize("train, measured", [
    ({"precision": "fp32", "channels_last": "auto"}, ["fp32", "fp32 + channels_last"]),  # fp32 given: no TF32
    ({"precision": "auto", "channels_last": False}, ["fp32/TF32", "bf16"]),
    ({"precision": "auto", "channels_last": "auto", "compile": True}, ["fp32/TF32", "bf16"]),  # NCHW under compile
])
def test_a_setting_given_fixes_its_part_of_the_candidates(tiny_config, tmp_path, on_cuda, train, measured):
    calls = []
    config = tiny_config(train=train, eval={"cache_dir": str(tmp_path)})
    tuning.choose_precision(config, (1, 28, 28), (), CUDA, timer(dict.fromkeys(measured, 1.0), calls))
    assert calls == [measured]


def test_given_settings_on_cuda_and_the_cpu_are_not_measured(tiny_config, tmp_path, on_cuda):
    def measure(*args):
        raise AssertionError("measured")
    config = tiny_config(train={"precision": "bf16", "channels_last": True}, eval={"cache_dir": str(tmp_path)})
    assert tuning.choose_precision(config, (1, 28, 28), (), CUDA, measure).name == "bf16 + channels_last"
    auto = tiny_config(train={"precision": "auto", "channels_last": "auto"}, eval={"cache_dir": str(tmp_path)})
    on_cpu = tuning.choose_precision(auto, (1, 28, 28), (), torch.device("cpu"), measure)
    assert on_cpu.name == "bf16 + channels_last" and not on_cpu.tf32  # the CPU's rule, as before
    assert not (tmp_path / tuning.CACHE_FILE).exists()


def test_the_timing_trains_each_candidate_and_leaves_the_rng_as_it_was(tiny_config):
    """``time_candidates`` runs real steps (here on the CPU) and does not disturb the run's seed."""
    config = tiny_config(model={"arch": "dcgan", "conditional": True})
    candidates = [Precision("cpu"), Precision("cpu", torch.bfloat16, True)]
    torch.manual_seed(5)
    ms = tuning.time_candidates(config, (1, 28, 28), [str(k) for k in range(10)], candidates, steps=2, rounds=2)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))
    assert set(ms) == {"fp32", "bf16 + channels_last"} and all(0 < v < 60_000 for v in ms.values())


def test_a_gpu_without_bf16_has_nothing_to_measure(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(models_base, "native_bf16", lambda device: (False, "Tesla T4 lacks bf16"))
    config = tiny_config(train={"precision": "auto", "channels_last": False}, eval={"cache_dir": str(tmp_path)})
    chosen = tuning.choose_precision(config, (1, 28, 28), (), CUDA, lambda *args: pytest.fail("measured"))
    assert chosen.note == "fp32/TF32 (auto: Tesla T4 lacks bf16; nothing to measure)" and chosen.tf32


# --- train.compile: no manual channels_last ----------------------------------------------------------
@pytest.mark.parametrize("channels_last", ["auto", True])
def test_compile_keeps_nchw(tiny_config, channels_last):
    """The CUDA crash under compile was inductor's stride assertion in convolution backward on a
    channels_last model: under compile the trainer leaves the layout to inductor, and says so."""
    config = tiny_config(train={"compile": True, "precision": "fp32", "channels_last": channels_last})
    chosen = tuning.choose_precision(config, (1, 28, 28), (), torch.device("cpu"))
    assert not chosen.channels_last and "channels_last off under train.compile" in chosen.note
    assert not tuning.choose_precision(tiny_config(train={"compile": True, "precision": "auto", "channels_last": "auto"}),
                                       (1, 28, 28), (), torch.device("cpu")).channels_last


# --- data on the device ------------------------------------------------------------------------------
def test_in_memory_data_is_batched_where_it_trains(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(), tmp_path)
    assert trainer.data.on_device and trainer.data.images.device == trainer.device
    real, labels = next(trainer.data.batches(16, 1))
    assert real.device == labels.device == trainer.device


def test_a_set_too_large_for_the_device_stays_on_the_host_with_the_same_batches(tiny_config):
    config = tiny_config()
    fits, too_large = load_data(config).to(torch.device("cpu")), load_data(config).to(torch.device("cpu"), free_bytes=1)
    assert fits.on_device and not too_large.on_device
    for (a, y), (b, z) in zip(fits.batches(16, 7), too_large.batches(16, 7), strict=True):
        assert torch.equal(a, b) and torch.equal(y, z)

