"""Training data: ImageFolder (reading, skipping, luminance) and PatchSampler (crops, flips and
rotations, noise, determinism, state)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pnpfast.train.data import ImageFolder, NoiseModel, PatchSampler, luminance

# MATLAB rgb2gray
LUMA = (0.298936021293775, 0.587043074451121, 0.114020904255103)
BROKEN_PNG = b"\x89PNG\r\n\x1a\n not really a png"


def test_image_folder_reads_recursively_and_skips_unreadable_files(make_pngs):
    folder = make_pngs("set", 2)
    make_pngs("set/sub", 1, seed=1)
    (folder / "broken.png").write_bytes(BROKEN_PNG)
    (folder / "notes.txt").write_text("not an image suffix: ignored, not listed")
    data = ImageFolder(folder, 1)
    assert len(data) == 3
    assert sorted(p.relative_to(folder).as_posix() for p in data.paths) == [
        "img0.png",
        "img1.png",
        "sub/img0.png",
    ]
    assert [p.name for p, _ in data.skipped] == ["broken.png"]
    assert data.skipped[0][1]  # a reason
    for x in data.images:
        assert x.shape == (1, 24, 24) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1


def test_image_folder_with_nothing_usable_names_the_folder(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "broken.png").write_bytes(BROKEN_PNG)
    with pytest.raises(ValueError, match="no usable image") as info:
        ImageFolder(folder, 1, what="train_dir")
    message = str(info.value)
    assert str(folder) in message and "train_dir" in message and "broken.png" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        ImageFolder(empty, 1)


def test_image_folder_missing_or_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolder(tmp_path / "nowhere", 1)
    (tmp_path / "file.png").write_bytes(BROKEN_PNG)
    with pytest.raises(ValueError, match="not a directory"):
        ImageFolder(tmp_path / "file.png", 1)
    with pytest.raises(ValueError, match="channels"):
        ImageFolder(tmp_path, 2)


def test_color_to_gray_uses_matlab_luminance_weights(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "color.png")
    r, g, b = (rgb[..., k].astype(np.float64) / 255 for k in range(3))
    want = 0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b
    assert np.abs(want - (r + g + b) / 3).max() > 0.05  # the plain mean would fail below

    gray = ImageFolder(tmp_path, 1)
    assert gray.images[0].shape == (1, 10, 12)
    np.testing.assert_allclose(gray.images[0][0].numpy(), want, atol=1e-6)
    color = ImageFolder(tmp_path, 3)
    np.testing.assert_allclose(color.images[0].numpy(), rgb.transpose(2, 0, 1) / 255, atol=1e-7)
    np.testing.assert_allclose(luminance(color.images[0])[0].numpy(), want, atol=1e-6)


def test_color_set_skips_gray_images(make_pngs):
    folder = make_pngs("mixed", 1)  # img0.png, gray
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(folder / "rgb.png")
    data = ImageFolder(folder, 3)
    assert [p.name for p in data.paths] == ["rgb.png"]
    assert data.images[0].shape == (3, 24, 24)
    assert [p.name for p, _ in data.skipped] == ["img0.png"]
    assert "gray" in data.skipped[0][1]
    with pytest.raises(ValueError, match="no usable image"):
        ImageFolder(make_pngs("only_gray", 2), 3)


def test_images_below_min_size_are_skipped(make_pngs):
    folder = make_pngs("sizes", 1)
    make_pngs("sizes/small", 1, size=(12, 30))
    data = ImageFolder(folder, 1, min_size=16)
    assert [p.name for p in data.paths] == ["img0.png"]
    assert "smaller than 16" in data.skipped[0][1]


# ---------------------------------------------------------------------------------------------
# PatchSampler


@pytest.fixture
def distinct_folder(tmp_path) -> ImageFolder:
    """Two 10x12 gray images whose pixels all differ within each image, so that a patch tells
    where it was cut and how it was turned."""
    values = np.arange(120, dtype=np.uint8).reshape(10, 12)
    Image.fromarray(values).save(tmp_path / "a.png")
    Image.fromarray(255 - values.T.copy()).save(tmp_path / "b.png")  # 12x10
    return ImageFolder(tmp_path, 1)


def _symmetries(window: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and mirror images of a square array."""
    turns = [np.rot90(window, k) for k in range(4)]
    return turns + [np.fliplr(t) for t in turns]


def _which_crop(patch: np.ndarray, images: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """Every (image, top, left, symmetry) whose window, so transformed, equals ``patch``."""
    p = patch.shape[0]
    found = []
    for i, image in enumerate(images):
        h, w = image.shape
        for top in range(h - p + 1):
            for left in range(w - p + 1):
                window = image[top : top + p, left : left + p]
                for s, turned in enumerate(_symmetries(window)):
                    if np.array_equal(turned, patch):
                        found.append((i, top, left, s))
    return found


def test_patches_are_turned_crops_of_the_images(distinct_folder):
    images = [x[0].numpy() for x in distinct_folder.images]
    sampler = PatchSampler(distinct_folder, 5, 8, NoiseModel(0.0, 0.0), seed=3)
    batch = sampler.next_batch(64)
    assert batch.clean.shape == batch.noisy.shape == (64, 1, 5, 5)
    assert batch.sigma.shape == (64,)
    assert torch.equal(batch.noisy, batch.clean)  # sigma 0
    symmetries, sources = set(), set()
    for patch in batch.clean:
        found = _which_crop(patch[0].numpy(), images)
        assert len(found) == 1, f"patch is not one crop of an image: {found}"
        sources.add(found[0][0])
        symmetries.add(found[0][3])
    assert sources == {0, 1}
    assert symmetries == set(range(8))  # all 8 flips/rotations occur

    plain = PatchSampler(distinct_folder, 5, 8, NoiseModel(0.0, 0.0), seed=3, augment=False)
    for patch in plain.next_batch(16).clean:
        assert [f[3] for f in _which_crop(patch[0].numpy(), images)] == [0]


def test_every_image_is_visited_patches_per_image_times_per_epoch(distinct_folder):
    images = [x[0].numpy() for x in distinct_folder.images]
    sampler = PatchSampler(distinct_folder, 4, 3, NoiseModel(0.0, 0.0), seed=0)
    batch = sampler.next_batch(6)  # one epoch: 2 images x 3 visits
    counts = [0, 0]
    for patch in batch.clean:
        counts[_which_crop(patch[0].numpy(), images)[0][0]] += 1
    assert counts == [3, 3]
    assert sampler.epoch == 0
    sampler.next_batch(1)
    assert sampler.epoch == 1


def test_noise_std_matches_sigma(make_pngs):
    folder = ImageFolder(make_pngs("noise", 3), 1)
    fixed = PatchSampler(folder, 16, 4, NoiseModel(0.1, 0.1), seed=0).next_batch(64)
    residual = fixed.noisy - fixed.clean
    assert torch.allclose(fixed.sigma, torch.full((64,), 0.1))
    assert residual.std().item() == pytest.approx(0.1, abs=0.003)  # 16384 samples
    assert abs(residual.mean().item()) < 0.003

    low, high = 0.02, 0.2
    batch = PatchSampler(folder, 16, 100, NoiseModel(low, high), seed=1).next_batch(256)
    sigma = batch.sigma
    assert ((sigma >= low) & (sigma <= high)).all()
    assert sigma.min() < low + 0.02 and sigma.max() > high - 0.02  # spread over the range
    assert sigma.mean().item() == pytest.approx((low + high) / 2, abs=0.015)
    per_patch = (batch.noisy - batch.clean).flatten(1).std(dim=1)
    # 256 samples per patch: a relative standard error of about 4.4%
    assert ((per_patch / sigma - 1).abs() < 0.25).all()
    assert torch.corrcoef(torch.stack([per_patch, sigma]))[0, 1] > 0.95


def _batches(sampler: PatchSampler, count: int, size: int = 5) -> list:
    return [sampler.next_batch(size) for _ in range(count)]


def _same(a, b) -> bool:
    return all(
        torch.equal(x.clean, y.clean)
        and torch.equal(x.noisy, y.noisy)
        and torch.equal(x.sigma, y.sigma)
        for x, y in zip(a, b, strict=True)
    )


def test_same_seed_same_batches(make_pngs):
    folder = ImageFolder(make_pngs("seed", 4), 1)
    noise = NoiseModel(0.0, 0.2)
    # 4 images x 3 patches: 5 batches of 5 cross two epoch boundaries
    first = _batches(PatchSampler(folder, 8, 3, noise, seed=5), 5)
    again = _batches(PatchSampler(folder, 8, 3, noise, seed=5), 5)
    other = _batches(PatchSampler(folder, 8, 3, noise, seed=6), 5)
    assert _same(first, again)
    assert not any(torch.equal(a.clean, b.clean) for a, b in zip(first, other, strict=True))


def test_state_dict_continues_the_same_sequence(make_pngs):
    folder = ImageFolder(make_pngs("state", 4), 1)
    noise = NoiseModel(0.0, 0.2)
    sampler = PatchSampler(folder, 8, 3, noise, seed=7)
    _batches(sampler, 3)
    state = sampler.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)  # as in a checkpoint
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    want = _batches(sampler, 4)  # crosses an epoch boundary

    # samplers of another seed continue from the state alone; the in-memory state is a
    # snapshot, unchanged by the batches drawn since
    in_memory = PatchSampler(folder, 8, 3, noise, seed=99)
    in_memory.load_state_dict(state)
    from_file = PatchSampler(folder, 8, 3, noise, seed=99)
    from_file.load_state_dict(saved)
    assert _same(want, _batches(in_memory, 4))
    assert _same(want, _batches(from_file, 4))
    assert in_memory.epoch == from_file.epoch == sampler.epoch > 0


def test_patch_larger_than_an_image_is_an_error(make_pngs):
    folder = make_pngs("patch", 2)
    Image.fromarray(np.zeros((12, 30), np.uint8)).save(folder / "small.png")
    data = ImageFolder(folder, 1)
    noise = NoiseModel(0.0, 0.1)
    with pytest.raises(ValueError, match="patch_size 16") as info:
        PatchSampler(data, 16, 2, noise)
    assert "small.png" in str(info.value)
    PatchSampler(data, 12, 2, noise).next_batch(4)  # the smallest side fits
    with pytest.raises(ValueError, match="patch_size"):
        PatchSampler(data, 0, 2, noise)
    with pytest.raises(ValueError, match="patches_per_image"):
        PatchSampler(data, 8, 0, noise)


def test_noise_model_range():
    with pytest.raises(ValueError, match="noise range"):
        NoiseModel(0.2, 0.1)
    with pytest.raises(ValueError, match="noise range"):
        NoiseModel(-0.1, 0.1)
    sigmas = NoiseModel(0.1, 0.1).sigmas(5, torch.Generator().manual_seed(0))
    assert torch.allclose(sigmas, torch.full((5,), 0.1))
