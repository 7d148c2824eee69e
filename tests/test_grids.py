"""Sample grids: torchvision's layout without importing torchvision in the workbook."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core import grids


@pytest.mark.parametrize("shape, columns", [((10, 1, 28, 28), 4), ((7, 3, 16, 16), 3), ((3, 1, 8, 8), 8)])
def test_grids_match_torchvision(shape, columns):
    from torchvision.utils import make_grid, save_image
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2  # some outside [-1, 1]
    expected = make_grid(images.clamp(-1, 1), nrow=columns, normalize=True, value_range=(-1, 1), padding=2)
    assert torch.equal(grids.tile(images, columns), expected)
    white = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=columns, padding=2, pad_value=1.0)
    assert torch.equal(grids.tile(images, columns, pad_value=1.0), white)
    buffer = io.BytesIO()
    save_image(images, buffer, format="png", nrow=columns, normalize=True, value_range=(-1, 1), padding=2)
    ours = np.array(Image.open(io.BytesIO(grids.png(images, columns))))
    assert np.array_equal(ours, np.array(Image.open(buffer)))
    assert Image.open(io.BytesIO(grids.png(images, columns, scale=3))).size == (ours.shape[1] * 3, ours.shape[0] * 3)
