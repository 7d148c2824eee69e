import os
from pathlib import Path

import pytest
import torch

from gan_core.config import from_dict
from gan_core.data import DEBIAN_FASHION_MNIST

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def one_thread_per_test_worker():
    """make test runs two workers on 2 cores: more torch threads each would spin against each other
    (an evaluator's training went from 2 to 9 minutes)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def real_data_name() -> str:
    """Fashion-MNIST where Debian's package is installed, scikit-learn's digits otherwise."""
    return "fashion-mnist" if (DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz").exists() else "digits"


@pytest.fixture
def tiny_config():
    """A DCGAN small enough to train a few epochs in about a second, on real data."""

    def make(**sections):
        raw = {
            "data": {"name": real_data_name(), "subset": 64, "image_size": 28},
            "model": {"latent_dim": 8}, "dcgan": {"ngf": 4, "ndf": 4},
            "train": {"epochs": 2, "batch_size": 16, "log_every": 2, "threads": 1,
                      "num_samples": 16, "progress": False, "device": "cpu",
                      "precision": "fp32", "channels_last": False},  # the same numbers on every CPU
        }
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        return from_dict(raw, "test")

    return make
