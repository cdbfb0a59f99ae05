"""Fixtures for the training tests: small folders of PNG images written with PIL."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def write_pngs(
    folder: Path, count: int, *, size: tuple[int, int] = (24, 24), color: bool = False, seed=0
) -> Path:
    """``count`` random 8-bit PNGs ``img{k}.png`` of ``size`` (height, width) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (*size, 3) if color else size
    for k in range(count):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{k}.png")
    return folder


@pytest.fixture
def make_pngs(tmp_path: Path) -> Callable[..., Path]:
    """``make_pngs(name, count, size=(24, 24), color=False, seed=0)``: a folder of random PNGs
    under tmp_path."""

    def make(name: str, count: int, **options) -> Path:
        return write_pngs(tmp_path / name, count, **options)

    return make


@pytest.fixture
def gray_dir(make_pngs) -> Path:
    """Four random 24x24 gray PNGs."""
    return make_pngs("gray", 4)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the networks are tiny, and more threads than free cores make each step
    much slower (the machine running the tests may be busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
