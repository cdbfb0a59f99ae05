"""Fixtures for the denoiser tests: the shared data folder, test images, CPU threads."""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pnpfast_test_utils import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo root>/../shared/data``; the test is skipped when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"shared test data not found at {SHARED_DATA} (<repo root>/../shared/data, or "
            "PNPFAST_SHARED_DATA)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def weights_file(shared_data: Path) -> Callable[[str], Path]:
    """Path of a weight file under weights/, skipping the test when it is missing."""

    def get(relative: str) -> Path:
        path = shared_data / "weights" / relative
        if not path.is_file():
            pytest.skip(f"weight file not found: {path}")
        return path

    return get


def read_image_set(folder: Path, color: bool) -> list[torch.Tensor]:
    """The PNG images of ``folder`` in sorted file order, each [1, C, H, W] float32 in [0, 1]."""
    images = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB" if color else "L"), dtype=np.float32) / 255.0
        t = torch.from_numpy(arr)
        images.append(t.permute(2, 0, 1)[None] if color else t[None, None])
    return images


@pytest.fixture(scope="session")
def image_set(shared_data: Path) -> Callable[[str, bool], list[torch.Tensor]]:
    """``image_set(name, color)``: the images of images/<name>, skipping when absent."""

    def get(name: str, color: bool) -> list[torch.Tensor]:
        folder = shared_data / "images" / name
        images = read_image_set(folder, color) if folder.is_dir() else []
        if not images:
            pytest.skip(f"test images not found in {folder}")
        return images

    return get


@pytest.fixture
def all_cpu_threads():
    """Run the test on every CPU core this process may use, then restore the thread count."""
    before = torch.get_num_threads()
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    torch.set_num_threads(len(cores) if cores else (os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)
