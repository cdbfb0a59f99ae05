"""pnpfast.data: the built-in example images and the motion kernel (its own tests: test_cli.py)."""

import numpy as np
import pytest
import torch
from skimage import data as skdata

from pnpfast.data import astronaut, camera


def test_astronaut_is_the_scaled_centre_crop():
    x = astronaut(6)
    assert x.shape == (1, 3, 6, 6) and x.dtype == torch.float32 and x.is_contiguous()
    # rows and columns 253..258 of the 512x512 image, by hand
    expected = skdata.astronaut()[253:259, 253:259].transpose(2, 0, 1)[None] / 255.0
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-7)


def test_whole_images_and_gray():
    assert astronaut().shape == (1, 3, 512, 512)
    x = camera(5)
    assert x.shape == (1, 1, 5, 5)
    np.testing.assert_allclose(
        x[0, 0].numpy(), skdata.camera()[253:258, 253:258] / 255.0, atol=1e-7
    )
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize(
    ("size", "error"),
    [(0, ValueError), (513, ValueError), (2.0, TypeError), (True, TypeError), ("64", TypeError)],
)
def test_bad_size_names_the_argument(size, error):
    with pytest.raises(
        error,
        match=r"size must be an int in \[1, 512\] \(the side of the centre crop of the 512x512",
    ):
        astronaut(size)
