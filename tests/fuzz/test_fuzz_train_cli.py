"""Fuzz table (issue 17) of training (pnpfast.train) and the command line (``pnpfast``).

Training rows use folders of tiny PNGs written on the fly (removed at exit); one row trains a
single step of a 3-layer DnCNN on 12x12 images. Command-line rows call ``pnpfast.cli.main``
in the process (two rows run a real subprocess): a bad input must end with a nonzero exit code
and exactly one error line on stderr, never a traceback (``CliFailed`` carries that line).
Good rows compare with what Pillow, NumPy or torch compute in the test.
"""

import contextlib
import io as textio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from fuzz_cases import Bad, Good, check, params, scratch_folder
from PIL import Image

from pnpfast.cli import main
from pnpfast.denoisers.architectures import build
from pnpfast.denoisers.weight_file import read_weights
from pnpfast.train import (
    LOSSES,
    Batch,
    ConfigError,
    ImageFolder,
    MSELoss,
    NoiseModel,
    NoiseWeightedMSELoss,
    PatchSampler,
    TrainConfig,
    check_run,
    register_loss,
    save_weights,
    train,
)

# ---------------------------------------------------------------------------------------------
# folders and files written on the fly


def folder() -> Path:
    """A new empty folder for one row (removed at exit)."""
    return scratch_folder("train")


def _pixels(k: int, color: bool = False) -> np.ndarray:
    shape = (12, 12, 3) if color else (12, 12)
    return np.random.default_rng(k).integers(0, 256, shape, dtype=np.uint8)


def _pngs(count: int = 2, color: bool = False) -> Path:
    """``count`` random 12x12 PNGs img<k>.png (pixels _pixels(k))."""
    where = folder()
    for k in range(count):
        Image.fromarray(_pixels(k, color)).save(where / f"img{k}.png")
    return where


def _corrupt(good: int = 0) -> Path:
    """A folder of a text file named .png and an empty .jpg, plus ``good`` readable PNGs."""
    where = _pngs(good) if good else folder()
    (where / "a.png").write_bytes(b"not an image")
    (where / "b.jpg").write_bytes(b"")
    return where


def _file(name: str = "afile", content: bytes = b"x") -> Path:
    path = folder() / name
    path.write_bytes(content)
    return path


def _net(depth: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build({"arch": "dncnn", "depth": depth, "features": 4, "channels": 1})


def _weights() -> Path:
    return save_weights(_net(), folder() / "w.pt", meta={"step": 1})


def _kernel() -> Path:
    path = folder() / "k.npy"
    np.save(path, np.ones((3, 3)) / 9)
    return path


TINY_ARCH = {"arch": "dncnn", "depth": 3, "features": 4}


def _settings(**overrides) -> dict:
    base = {
        "train_dir": "unused",
        "out_dir": "unused",
        "arch": dict(TINY_ARCH),
        "patch_size": 8,
        "patches_per_image": 1,
        "batch_size": 2,
        "steps": 1,
        "val_every": 1,
        "checkpoint_every": 1,
        "log_every": 1,
        "val_crop": None,
    }
    return {**base, **overrides}


def _cfg(**overrides) -> TrainConfig:
    """A tiny run on two 12x12 gray PNGs into a fresh out_dir."""
    where = folder()
    return TrainConfig(**_settings(train_dir=str(_pngs()), out_dir=str(where / "run"), **overrides))


def _changed(**changes) -> TrainConfig:
    cfg = _cfg()
    for name, value in changes.items():
        setattr(cfg, name, value)
    return cfg


def _trained_then(**changes) -> int:
    """Train one step, then check a run in the same out_dir with ``changes``."""
    cfg = _cfg()
    train(cfg, progress=False)
    other = TrainConfig(**{**cfg.to_json(), "sigma": cfg.sigma, **changes})
    return check_run(other)


def _sampler(**options) -> PatchSampler:
    args = {"folder": ImageFolder(_pngs(), 1), "patch_size": 4, "patches_per_image": 1}
    args["noise"] = NoiseModel(0.0, 0.1)
    return PatchSampler(**{**args, **options})


def _batch(b: int = 2) -> Batch:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(b, 1, 4, 4, generator=g, dtype=torch.float64)
    noisy = clean + 0.1 * torch.randn(b, 1, 4, 4, generator=g, dtype=torch.float64)
    return Batch(clean, noisy, torch.tensor([0.05, 0.2], dtype=torch.float64)[:b])


def _identity(x, sigma):
    return x


def _with_loss(name: str, factory) -> float:
    """Register ``factory`` as ``name``, read it back, and unregister it."""
    try:
        register_loss(name, factory)
        return float(LOSSES[name] is factory)
    finally:
        LOSSES.pop(name, None)


def _f64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _luma(a: np.ndarray) -> torch.Tensor:
    """MATLAB rgb2gray of an 8-bit RGB array, [1, H, W] on [0, 1], written out here."""
    w = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    return _f64((a / 255.0) @ w)[None]


# ---------------------------------------------------------------------------------------------
# TrainConfig, check_run, train

TC = "pnpfast.train.TrainConfig"
BAD_FIELDS = [
    ("type", "train_dir", None),
    ("type", "out_dir", 5),
    ("value", "channels", 2),
    ("type", "channels", True),
    ("value", "sigma", (0.2, 0.1)),
    ("nan-inf", "sigma", (0.0, float("inf"))),
    ("nan-inf", "sigma", (float("nan"), 0.1)),
    ("size", "sigma", (0.1,)),
    ("value", "sigma", (0.0, 25.0)),  # the 0..255 scale by mistake
    ("value", "val_sigmas", (25.0,)),
    ("size", "patch_size", 0),
    ("value", "patches_per_image", -1),
    ("type", "batch_size", True),
    ("type", "batch_size", 2.0),
    ("value", "steps", 0),
    ("nan-inf", "lr", float("nan")),
    ("value", "lr", -1.0),
    ("value", "lr_final", 0.0),
    ("name", "schedule", "linear"),
    ("value", "warmup", -1),
    ("value", "milestones", (2.0,)),
    ("value", "gamma", 0.0),
    ("nan-inf", "weight_decay", float("inf")),
    ("value", "clip", 0.0),
    ("name", "precision", "fp8"),
    ("name", "device", "tpu"),
    ("meta", "device", "meta"),
    ("value", "seed", -1),
    ("value", "seed", 2**64),
    ("type", "loss", 3),
    ("type", "loss_options", []),
    ("type", "init", 5),
    ("value", "val_every", 0),
    ("size", "val_sigmas", ()),
    ("nan-inf", "val_sigmas", (float("nan"),)),
    ("value", "val_crop", 0),
    ("value", "val_images", 0),
    ("value", "checkpoint_every", 0),
    ("value", "log_every", 0),
    ("value", "threads", 0),
    ("value", "threads", 10**6),
    ("value", "batch_size", 10**6),
    ("value", "patches_per_image", 10**9),
    ("type", "augment", "yes"),
]
TRAIN_CONFIG = [
    *[
        Bad(
            TC,
            cat,
            f"{name}={value!r}",
            lambda name=name, value=value: TrainConfig(**_settings(**{name: value})),
            ConfigError,
            rf"^{name} must be",
        )
        for cat, name, value in BAD_FIELDS
    ],
    Bad(
        TC,
        "type",
        "arch-str",
        lambda: TrainConfig(**_settings(arch="dncnn")),
        ConfigError,
        r"arch must be a dict with an 'arch' entry",
    ),
    Bad(
        TC,
        "name",
        "arch-unknown",
        lambda: TrainConfig(**_settings(arch={"arch": "unet"})),
        ConfigError,
        r"arch must be one of drunet, dncnn, bfcnn, gradient_step, not 'unet'",
    ),
    Bad(
        TC,
        "name",
        "arch-unknown-key",
        lambda: TrainConfig(**_settings(arch={**TINY_ARCH, "widths": [4]})),
        ConfigError,
        r"arch: dncnn does not take widths",
    ),
    Bad(
        TC,
        "name",
        "unknown-field",
        lambda: TrainConfig(**_settings(), foo=1),
        TypeError,
        r"unexpected keyword argument 'foo'",
    ),
    Bad(
        "pnpfast.train.TrainConfig.validate",
        "value",
        "lr-changed-after-construction",
        lambda: _changed(lr=-1.0).validate(),
        ConfigError,
        r"lr must be a number > 0, got -1",
    ),
    Good(
        TC,
        "type",
        "sigma-list-becomes-floats",
        lambda: torch.tensor(TrainConfig(**_settings(sigma=[0, 0.1])).sigma, dtype=torch.float64),
        lambda: _f64([0.0, 0.1]),
        0.0,
    ),
]

CR = "pnpfast.train.check_run"
CHECK_RUN = [
    Bad(
        CR,
        "type",
        "not-a-config",
        lambda: check_run({"train_dir": "x"}),
        TypeError,
        r"config must be a TrainConfig, not dict",
    ),
    Bad(
        CR,
        "file",
        "train-dir-missing",
        lambda: check_run(_changed(train_dir="/nonexistent/x")),
        ConfigError,
        r"train_dir /nonexistent/x does not exist",
    ),
    Bad(
        CR,
        "file",
        "train-dir-is-a-file",
        lambda: check_run(_changed(train_dir=str(_file()))),
        ConfigError,
        r"train_dir .*afile is not a directory",
    ),
    Bad(
        CR,
        "file",
        "train-dir-empty",
        lambda: check_run(_changed(train_dir=str(folder()))),
        ConfigError,
        r"train_dir .* has no usable image \(no image files",
    ),
    Bad(
        CR,
        "file",
        "train-dir-corrupt",
        lambda: check_run(_changed(train_dir=str(_corrupt()))),
        ConfigError,
        r"has no usable image .*skipped: a\.png: not an image file.*b\.jpg: the "
        r"file is empty",
    ),
    Bad(
        CR,
        "size",
        "patch-larger-than-images",
        lambda: check_run(_changed(patch_size=13)),
        ConfigError,
        r"img0\.png: 12x12 is smaller than 13 pixels",
    ),
    Bad(
        CR,
        "file",
        "val-dir-missing",
        lambda: check_run(_changed(val_dir="/nonexistent/v")),
        ConfigError,
        r"val_dir /nonexistent/v does not exist",
    ),
    Bad(
        CR,
        "value",
        "arch-depth",
        lambda: check_run(_changed(arch={**TINY_ARCH, "depth": -3})),
        ConfigError,
        r"arch dncnn: depth must be an int in \[3, 1000\], not -3",
    ),
    Bad(
        CR,
        "name",
        "loss-unknown",
        lambda: check_run(_changed(loss="l1")),
        ConfigError,
        r"loss must be one of mse, .* not 'l1'",
    ),
    Bad(
        CR,
        "name",
        "loss-option-unknown",
        lambda: check_run(_changed(loss_options={"zz": 1})),
        ConfigError,
        r"loss_options of loss mse: .*unexpected keyword argument 'zz'",
    ),
    Bad(
        CR,
        "nan-inf",
        "loss-option-nan",
        lambda: check_run(_changed(loss="mse-sigma", loss_options={"sigma_ref": float("nan")})),
        ConfigError,
        r"loss_options of loss mse-sigma: sigma_ref must be a finite number > 0, not nan",
    ),
    Bad(
        CR,
        "file",
        "init-text-file",
        lambda: check_run(_changed(init=str(_file("i.pt", b"hi")))),
        ConfigError,
        r"init: weights .*i\.pt could not be read: it is a text file",
    ),
    Bad(
        CR,
        "file",
        "init-missing",
        lambda: check_run(_changed(init="/nonexistent/i.pt")),
        ConfigError,
        r"init: .*i\.pt",
    ),
    Bad(
        CR,
        "value",
        "device-cuda-index",
        lambda: check_run(_changed(device="cuda:7")),
        ConfigError,
        r"device cuda:7",
    ),
    Bad(
        CR,
        "file",
        "out-dir-is-a-file",
        lambda: check_run(_changed(out_dir=str(_file()))),
        ConfigError,
        r"out_dir .*afile is a file, not a folder",
    ),
    Bad(
        CR,
        "file",
        "out-dir-under-a-file",
        lambda: check_run(_changed(out_dir=str(_file() / "run"))),
        ConfigError,
        r"out_dir .*afile/run cannot be made: .*afile is a file",
    ),
    Bad(
        CR,
        "file",
        "checkpoint-damaged",
        lambda: check_run(_changed(out_dir=str(_file("checkpoint.pt", b"junk").parent))),
        ConfigError,
        r"checkpoint\.pt cannot be read .*start over with resume=False",
    ),
    Bad(
        CR,
        "file",
        "checkpoint-of-another-run",
        lambda: _trained_then(lr=0.5),
        ConfigError,
        r"holds a run of another configuration \(lr 0\.001 there, 0\.5 now\)",
    ),
    Bad(
        CR,
        "type",
        "loss-not-callable",
        lambda: check_run(_cfg(), loss=5),
        TypeError,
        r"loss must be callable as loss\(model, batch\), not int",
    ),
    Good(CR, "file", "fresh-out-dir-starts-at-0", lambda: check_run(_cfg()), lambda: 0, 0),
    Good(
        CR,
        "file",
        "damaged-checkpoint-ignored-when-starting-over",
        lambda: check_run(
            _changed(out_dir=str(_file("checkpoint.pt", b"junk").parent)), resume=False
        ),
        lambda: 0,
        0,
    ),
]

TR = "pnpfast.train.train"
TRAIN = [
    Bad(
        TR,
        "type",
        "not-a-config",
        lambda: train(None),
        TypeError,
        r"config must be a TrainConfig, not NoneType",
    ),
    Bad(
        TR,
        "file",
        "out-dir-under-a-file",
        lambda: train(_changed(out_dir=str(_file() / "run")), progress=False),
        ConfigError,
        r"out_dir .*afile/run cannot be made",
    ),
    Bad(
        TR,
        "value",
        "changed-after-construction",
        lambda: train(_changed(steps=0), progress=False),
        ConfigError,
        r"steps must be an int",
    ),
]

# ---------------------------------------------------------------------------------------------
# data: ImageFolder, NoiseModel, PatchSampler

IF = "pnpfast.train.ImageFolder"
NM = "pnpfast.train.NoiseModel"
PS = "pnpfast.train.PatchSampler"
DATA = [
    Bad(
        IF,
        "file",
        "missing",
        lambda: ImageFolder("/nonexistent/f", 1),
        FileNotFoundError,
        r"folder /nonexistent/f does not exist",
    ),
    Bad(
        IF,
        "file",
        "a-file",
        lambda: ImageFolder(_file(), 1),
        ValueError,
        r"folder .*afile is not a directory",
    ),
    Bad(
        IF,
        "file",
        "empty",
        lambda: ImageFolder(folder(), 1),
        ValueError,
        r"has no usable image \(no image files, suffixes \.png",
    ),
    Bad(
        IF,
        "file",
        "corrupt-images",
        lambda: ImageFolder(_corrupt(), 1),
        ValueError,
        r"has no usable image \(2 image files.*a\.png: not an image file",
    ),
    Bad(
        IF,
        "mismatch",
        "gray-in-a-color-set",
        lambda: ImageFolder(_pngs(), 3),
        ValueError,
        r"img0\.png: gray image in a color \(channels=3\) set",
    ),
    Bad(
        IF,
        "value",
        "channels-2",
        lambda: ImageFolder(_pngs(), 2),
        ValueError,
        r"channels must be 1 \(gray\) or 3 \(color\), got 2",
    ),
    Bad(
        IF,
        "type",
        "channels-true",
        lambda: ImageFolder(_pngs(), True),
        ValueError,
        r"channels must be 1 \(gray\) or 3 \(color\), got True",
    ),
    Bad(
        IF,
        "type",
        "channels-float",
        lambda: ImageFolder(_pngs(), 1.0),
        ValueError,
        r"channels must be .* got 1\.0",
    ),
    Bad(
        IF,
        "value",
        "min-size-0",
        lambda: ImageFolder(_pngs(), 1, min_size=0),
        ValueError,
        r"min_size must be an int >= 1, not 0",
    ),
    Bad(
        IF,
        "size",
        "min-size-larger",
        lambda: ImageFolder(_pngs(), 1, min_size=13),
        ValueError,
        r"img0\.png: 12x12 is smaller than 13 pixels",
    ),
    Bad(
        IF,
        "type",
        "root-none",
        lambda: ImageFolder(None, 1),
        TypeError,
        r"root must be a str or os\.PathLike, not NoneType",
    ),
    Good(
        IF,
        "file",
        "corrupt-files-skipped",
        lambda: float(len(ImageFolder(_corrupt(1), 1))),
        lambda: 1.0,
        0.0,
    ),
    Good(
        IF,
        "mismatch",
        "color-to-luma",
        lambda: ImageFolder(_pngs(1, color=True), 1).images[0],
        lambda: _luma(_pixels(0, color=True)),
        1e-6,
    ),
    Bad(
        NM,
        "value",
        "low-above-high",
        lambda: NoiseModel(0.2, 0.1),
        ValueError,
        r"0 <= low <= high <= 1 .*, got \[0\.2, 0\.1\]",
    ),
    Bad(
        NM,
        "value",
        "negative",
        lambda: NoiseModel(-0.1, 0.1),
        ValueError,
        r"0 <= low <= high <= 1 .*, got \[-0\.1, 0\.1\]",
    ),
    Bad(
        NM,
        "value",
        "0-255-scale",
        lambda: NoiseModel(0.0, 50.0),
        ValueError,
        r"0 <= low <= high <= 1 \(the \[0, 1\] scale: 25/255 for 25\), got \[0\.0, 50\.0\]",
    ),
    Bad(
        NM,
        "nan-inf",
        "low-nan",
        lambda: NoiseModel(float("nan"), 0.1),
        ValueError,
        r"low must be a finite number, not nan",
    ),
    Bad(
        NM,
        "nan-inf",
        "high-inf",
        lambda: NoiseModel(0.0, float("inf")),
        ValueError,
        r"high must be a finite number, not inf",
    ),
    Bad(
        NM,
        "type",
        "low-str",
        lambda: NoiseModel("0", 0.1),
        TypeError,
        r"low must be a finite number, not str '0'",
    ),
    Bad(
        NM,
        "type",
        "high-bool",
        lambda: NoiseModel(0.0, True),
        TypeError,
        r"high must be a finite number, not bool True",
    ),
    Bad(
        NM,
        "type",
        "low-tensor",
        lambda: NoiseModel(torch.tensor(0.0), 0.1),
        TypeError,
        r"low must be a finite number, not Tensor tensor\(0\.\)",
    ),
    Good(
        NM,
        "value",
        "fixed-level",
        lambda: NoiseModel(np.float64(0.1), 0.1).sigmas(3, torch.Generator().manual_seed(0)),
        lambda: _f64([0.1, 0.1, 0.1]),
        1e-7,
    ),
    Good(
        NM,
        "value",
        "zero-noise",
        lambda: NoiseModel(0, 0).sigmas(2, torch.Generator()),
        lambda: _f64([0.0, 0.0]),
        0.0,
    ),
    Bad(
        PS,
        "size",
        "patch-0",
        lambda: _sampler(patch_size=0),
        ValueError,
        r"patch_size must be an int >= 1, not 0",
    ),
    Bad(
        PS,
        "size",
        "patch-larger-than-images",
        lambda: _sampler(patch_size=13),
        ValueError,
        r"patch_size 13 is larger than 2 image\(s\) of .*, e\.g\. img0\.png",
    ),
    Bad(
        PS,
        "type",
        "patch-float",
        lambda: _sampler(patch_size=2.5),
        TypeError,
        r"patch_size must be an int >= 1, not float 2\.5",
    ),
    Bad(
        PS,
        "type",
        "patch-none",
        lambda: _sampler(patch_size=None),
        TypeError,
        r"patch_size must be an int >= 1, not NoneType None",
    ),
    Bad(
        PS,
        "value",
        "patches-per-image-0",
        lambda: _sampler(patches_per_image=0),
        ValueError,
        r"patches_per_image must be an int in \[1, 100000\], not 0",
    ),
    Bad(
        PS,
        "type",
        "patches-per-image-bool",
        lambda: _sampler(patches_per_image=True),
        TypeError,
        r"patches_per_image must be an int in \[1, 100000\], not bool True",
    ),
    Bad(
        PS,
        "type",
        "noise-tuple",
        lambda: _sampler(noise=(0.0, 0.1)),
        TypeError,
        r"noise must be a NoiseModel, not tuple",
    ),
    Bad(
        PS,
        "type",
        "folder-list",
        lambda: _sampler(folder=[torch.rand(1, 8, 8)]),
        TypeError,
        r"folder must be an ImageFolder, not list",
    ),
    Bad(
        PS,
        "value",
        "seed-negative",
        lambda: _sampler(seed=-1),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not -1",
    ),
    Bad(
        PS,
        "value",
        "seed-2**64",
        lambda: _sampler(seed=2**64),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not 18446744073709551616",
    ),
    Bad(
        PS,
        "type",
        "augment-str",
        lambda: _sampler(augment="no"),
        TypeError,
        r"augment must be True or False, not str 'no'",
    ),
    Bad(
        "pnpfast.train.PatchSampler.next_batch",
        "size",
        "batch-0",
        lambda: _sampler().next_batch(0),
        ValueError,
        r"batch_size must be an int in \[1, 65536\], not 0",
    ),
    Bad(
        "pnpfast.train.PatchSampler.next_batch",
        "type",
        "batch-float",
        lambda: _sampler().next_batch(2.0),
        TypeError,
        r"batch_size must be an int in \[1, 65536\], not float 2\.0",
    ),
    Bad(
        "pnpfast.train.PatchSampler.next_batch",
        "value",
        "batch-10**9",
        lambda: _sampler().next_batch(10**9),
        ValueError,
        r"batch_size must be an int in \[1, 65536\], not 1000000000",
    ),
    Bad(
        "pnpfast.train.PatchSampler.load_state_dict",
        "value",
        "empty-state",
        lambda: _sampler().load_state_dict({}),
        ValueError,
        r"state must be a dict from PatchSampler\.state_dict; it lacks generator, epoch",
    ),
    # the whole image when the patch is as large as it (one image, no augmentation, no noise)
    Good(
        PS,
        "size",
        "patch-equals-image",
        lambda: (
            PatchSampler(ImageFolder(_pngs(1), 1), 12, 1, NoiseModel(0.0, 0.0), augment=False)
            .next_batch(np.int64(1))
            .noisy
        ),
        lambda: _f64(_pixels(0) / 255.0)[None, None],
        1e-7,
    ),
]

# ---------------------------------------------------------------------------------------------
# losses, register_loss, save_weights

LOSS = [
    Bad(
        "pnpfast.train.MSELoss",
        "denoiser",
        "wrong-shape",
        lambda: MSELoss()(lambda x, s: x[..., :2, :2], _batch()),
        ValueError,
        r"the model returned shape \(2, 1, 2, 2\) for a batch of shape \(2, 1, 4, 4\)",
    ),
    Bad(
        "pnpfast.train.MSELoss",
        "denoiser",
        "not-a-tensor",
        lambda: MSELoss()(lambda x, s: x.numpy(), _batch()),
        TypeError,
        r"the model returned ndarray, not a tensor",
    ),
    Bad(
        "pnpfast.train.MSELoss",
        "type",
        "batch-tuple",
        lambda: MSELoss()(_identity, (torch.rand(1, 1, 4, 4),) * 2),
        TypeError,
        r"batch must be a pnpfast\.train\.Batch, not tuple",
    ),
    Good(
        "pnpfast.train.MSELoss",
        "value",
        "identity-model",
        lambda: MSELoss()(_identity, _batch())[0],
        lambda: ((_batch().noisy - _batch().clean) ** 2).mean(),
        1e-6,
    ),
    Bad(
        "pnpfast.train.NoiseWeightedMSELoss",
        "nan-inf",
        "sigma-ref-inf",
        lambda: NoiseWeightedMSELoss(sigma_ref=float("inf")),
        ValueError,
        r"sigma_ref must be a finite number > 0, not inf",
    ),
    Bad(
        "pnpfast.train.NoiseWeightedMSELoss",
        "value",
        "sigma-floor-0",
        lambda: NoiseWeightedMSELoss(sigma_floor=0.0),
        ValueError,
        r"sigma_floor must be a finite number > 0, not 0\.0",
    ),
    Bad(
        "pnpfast.train.NoiseWeightedMSELoss",
        "type",
        "sigma-ref-str",
        lambda: NoiseWeightedMSELoss(sigma_ref="25"),
        TypeError,
        r"sigma_ref must be a finite number > 0, not str '25'",
    ),
    Bad(
        "pnpfast.train.NoiseWeightedMSELoss",
        "denoiser",
        "wrong-shape",
        lambda: NoiseWeightedMSELoss()(lambda x, s: x[:1], _batch()),
        ValueError,
        r"the model returned shape \(1, 1, 4, 4\)",
    ),
    Good(
        "pnpfast.train.NoiseWeightedMSELoss",
        "value",
        "identity-model",
        lambda: NoiseWeightedMSELoss(sigma_ref=0.1, sigma_floor=0.1)(_identity, _batch())[0],
        lambda: (
            (0.02 / (_batch().sigma ** 2 + 0.01))
            * ((_batch().noisy - _batch().clean) ** 2).mean(dim=(1, 2, 3))
        ).mean(),
        1e-6,
    ),
    Bad(
        "pnpfast.train.register_loss",
        "name",
        "taken",
        lambda: register_loss("mse", MSELoss),
        ValueError,
        r"a loss named 'mse' is already registered",
    ),
    Bad(
        "pnpfast.train.register_loss",
        "type",
        "name-int",
        lambda: register_loss(3, MSELoss),
        TypeError,
        r"name must be a str, not int",
    ),
    Bad(
        "pnpfast.train.register_loss",
        "name",
        "name-empty",
        lambda: register_loss(" ", MSELoss),
        ValueError,
        r"name must be non-empty",
    ),
    Bad(
        "pnpfast.train.register_loss",
        "type",
        "factory-not-callable",
        lambda: register_loss("fuzz-loss", 5),
        TypeError,
        r"factory must be callable",
    ),
    Good(
        "pnpfast.train.register_loss",
        "name",
        "new-name",
        lambda: _with_loss("fuzz-new-loss", MSELoss),
        lambda: 1.0,
        0.0,
    ),
    Bad(
        "pnpfast.train.save_weights",
        "file",
        "missing-folder",
        lambda: save_weights(_net(), folder() / "no" / "w.pt"),
        FileNotFoundError,
        r"cannot write .*w\.pt: the folder .*no does not exist",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "file",
        "folder-is-a-file",
        lambda: save_weights(_net(), _file() / "w.pt"),
        NotADirectoryError,
        r"cannot write .*afile/w\.pt: .*afile is a file, not a folder",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "file",
        "path-is-a-folder",
        lambda: save_weights(_net(), folder()),
        IsADirectoryError,
        r"it is a folder",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "file",
        "unwritable-folder",
        lambda: save_weights(_net(), "/sys/w.pt"),  # sysfs refuses new files, to root too
        PermissionError,
        r"cannot write /sys/w\.pt: Permission denied",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "type",
        "path-none",
        lambda: save_weights(_net(), None),
        TypeError,
        r"path must be a str or os\.PathLike, not NoneType",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "type",
        "no-config",
        lambda: save_weights(torch.nn.Linear(2, 2), folder() / "w.pt"),
        TypeError,
        r"Linear has no config\(\)",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "type",
        "meta-list",
        lambda: save_weights(_net(), folder() / "w.pt", meta=[1]),
        TypeError,
        r"meta must be a dict, not list",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "type",
        "meta-object",
        lambda: save_weights(_net(), folder() / "w.pt", meta={"a": object()}),
        TypeError,
        r"meta\['a'\] is a object; meta may hold",
    ),
    Bad(
        "pnpfast.train.save_weights",
        "meta",
        "model-on-meta",
        lambda: save_weights(_net().to("meta"), folder() / "w.pt"),
        ValueError,
        r"model: .*weight is on the meta device",
    ),
    Good(
        "pnpfast.train.save_weights",
        "file",
        "round-trip",
        lambda: read_weights(_weights()).state_dict["first.weight"],
        lambda: _net().state_dict()["first.weight"],
        0.0,
    ),
]

# ---------------------------------------------------------------------------------------------
# the command line


class CliFailed(Exception):
    """main returned a nonzero code with one error line; str(): 'exit N: <that line>'."""


def cli(*argv, env: dict | None = None) -> int:
    """Run ``pnpfast *argv`` in this process; CliFailed for a nonzero exit code. Fails (an
    AssertionError, the wrong type for every row) on a traceback or more than one error line."""
    out, err = textio.StringIO(), textio.StringIO()
    before = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.update({k: v})
    return _outcome(code, err.getvalue())


def cli_process(*argv, env: dict | None = None) -> int:
    """The same through a real process (the exit code and stderr as a shell sees them)."""
    code = "import sys; from pnpfast.cli import main; sys.exit(main())"
    run = subprocess.run(
        [sys.executable, "-c", code, *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    return _outcome(run.returncode, run.stderr)


def _outcome(code: int, stderr: str) -> int:
    assert "Traceback" not in stderr, f"a traceback on stderr: {stderr}"
    if code == 0:
        return 0
    # argparse writes its usage (lines starting with 'usage:' or spaces) above its error
    lines = [line for line in stderr.splitlines() if line.startswith("pnpfast")]
    assert len(lines) == 1, f"expected one error line, stderr was {stderr!r}"
    raise CliFailed(f"exit {code}: {lines[0]}")


def _exported(*flags) -> torch.Tensor:
    target = folder() / "e.pt"
    cli("export", _weights(), target, *flags)
    return read_weights(target).state_dict["first.weight"]


def _deblur(*extra, inputs=None) -> int:
    image = folder() / "a.png"
    Image.fromarray(_pixels(0)).save(image)
    inputs = [image] if inputs is None else inputs
    return cli("deblur", *inputs, "-k", _kernel(), "--noise", "2", "-o", folder(), *extra)


def _in(sub: str, name: str) -> Path:
    """An 8x8 gray PNG at folder()/sub/name."""
    path = folder() / sub / name
    path.parent.mkdir()
    Image.fromarray(_pixels(0)).save(path)
    return path


def _train_cli(*extra, train_dir=None, out=None) -> int:
    tiny = ["--arch", "dncnn", "--depth", "3", "--features", "4", "--patch-size", "8"]
    tiny += ["--batch-size", "2", "--steps", "1", "--no-progress"]
    train_dir = _pngs() if train_dir is None else train_dir
    out = folder() / "run" if out is None else out
    return cli("train", "--train-dir", train_dir, "--out", out, *tiny, *extra)


def _train_twice(*changed) -> int:
    out, images = folder() / "run", _pngs()
    _train_cli(train_dir=images, out=out)
    return _train_cli(*changed, train_dir=images, out=out)


U2 = r"exit 2: pnpfast"
DEMO = "pnpfast demo"
DEBLUR = "pnpfast deblur"
TRAIN_CLI = "pnpfast train"
EXPORT = "pnpfast export"
BACKENDS = "pnpfast backends"
CLI = [
    Bad(
        "pnpfast.cli.main",
        "name",
        "no-command",
        lambda: cli(),
        CliFailed,
        r"exit 2: pnpfast: error: a command is required",
    ),
    Bad(
        "pnpfast.cli.main",
        "name",
        "unknown-command",
        lambda: cli("frob"),
        CliFailed,
        r"exit 2: pnpfast: error: argument COMMAND: invalid choice: 'frob'",
    ),
    Bad(
        "pnpfast.cli.main",
        "value",
        "unexpected-error-is-one-line",
        lambda: _command_raising(RuntimeError("boom\n  at line 2")),
        CliFailed,
        r"^exit 1: pnpfast backends: failed: RuntimeError: boom at line 2 "
        r"\(PNPFAST_TRACEBACK=1 prints where\)$",
    ),
    Bad(
        "pnpfast.cli.main",
        "name",
        "PNPFAST_TRACEBACK-unknown-value",
        lambda: _command_raising(RuntimeError("boom"), env={"PNPFAST_TRACEBACK": "maybe"}),
        CliFailed,
        r"^exit 2: pnpfast backends: error: PNPFAST_TRACEBACK must be 1, true, yes or on .*"
        r"not 'maybe'$",
    ),
    Good(
        "pnpfast.cli.main",
        "value",
        "PNPFAST_TRACEBACK=1-prints-the-traceback",
        lambda: _traceback_printed(RuntimeError("boom")),
        lambda: True,
    ),
    Bad(
        DEMO,
        "size",
        "size-8",
        lambda: cli("demo", "--size", "8"),
        CliFailed,
        rf"{U2} demo: error: argument --size: the demo size must be in 16\.\.512, got 8",
    ),
    Bad(
        DEMO,
        "nan-inf",
        "noise-nan",
        lambda: cli("demo", "--noise", "nan"),
        CliFailed,
        rf"{U2} demo: error: argument --noise: the noise level must be a number > 0, got nan",
    ),
    Bad(
        DEMO,
        "value",
        "noise-negative",
        lambda: cli("demo", "--noise", "-1"),
        CliFailed,
        r"argument --noise: the noise level must be a number > 0, got -1",
    ),
    Bad(
        DEMO,
        "value",
        "noise-above-255",
        lambda: cli("demo", "--noise", "1000"),
        CliFailed,
        r"argument --noise: the noise level is on the 0\.\.255 scale .* got 1000",
    ),
    Bad(
        DEMO,
        "value",
        "iters-0",
        lambda: cli("demo", "--iters", "0"),
        CliFailed,
        r"argument --iters: expected an integer >= 1, got '0'",
    ),
    Bad(
        DEMO,
        "value",
        "iters-huge-subprocess",
        lambda: cli_process("demo", "--iters", 10**20),
        CliFailed,
        r"exit 2: .*argument --iters: expected at most 100000 iterations",
    ),
    Bad(
        DEMO,
        "name",
        "unknown-flag",
        lambda: cli("demo", "--zz"),
        CliFailed,
        r"exit 2: pnpfast: error: unrecognized arguments: --zz",
    ),
    Bad(
        DEMO,
        "file",
        "output-is-a-file",
        lambda: cli("demo", "-o", _file()),
        CliFailed,
        rf"{U2} demo: error: the output folder .*afile is a file",
    ),
    Bad(
        DEMO,
        "file",
        "output-under-a-file",
        lambda: cli("demo", "-o", _file() / "d"),
        CliFailed,
        rf"{U2} demo: error: cannot create the output folder .*afile/d: .*Not a directory",
    ),
    Bad(
        DEBLUR,
        "file",
        "input-missing",
        lambda: _deblur(inputs=[folder() / "none.png"]),
        CliFailed,
        r"exit 2: pnpfast deblur: error: input .*none\.png: no such file or folder",
    ),
    Bad(
        DEBLUR,
        "file",
        "input-is-a-folder",
        lambda: _deblur(inputs=[folder()]),
        CliFailed,
        r"exit 2: pnpfast deblur: error: folder .* holds no image files \(\.png, ",
    ),
    Bad(
        DEBLUR,
        "file",
        "input-corrupt",
        lambda: _deblur(inputs=[_file("c.png", b"junk")]),
        CliFailed,
        r"exit 1: pnpfast deblur: failed: 1 of 1 images \(first: c\.png: ImageReadError: "
        r"cannot read image .*c\.png: not an image",
    ),
    Bad(
        DEBLUR,
        "file",
        "kernel-missing",
        lambda: cli(
            "deblur", _file("a.png"), "-k", "/nonexistent/k.npy", "--noise", "2", "-o", folder()
        ),
        CliFailed,
        rf"{U2} deblur: error: cannot read kernel /nonexistent/k\.npy: no such file",
    ),
    Bad(
        DEBLUR,
        "nan-inf",
        "kernel-nan",
        lambda: cli("deblur", _file("a.png"), "-k", _nan_kernel(), "--noise", "2", "-o", folder()),
        CliFailed,
        rf"{U2} deblur: error: cannot read kernel .*nan\.npy: the kernel contains NaN",
    ),
    Bad(
        DEBLUR,
        "value",
        "kernel-index-negative",
        lambda: _deblur("--kernel-index", "-1"),
        CliFailed,
        rf"{U2} deblur: error: --kernel-index: index must be an int >= 0, not -1",
    ),
    Bad(
        DEBLUR,
        "type",
        "kernel-index-text",
        lambda: _deblur("--kernel-index", "x"),
        CliFailed,
        r"argument --kernel-index: invalid int value: 'x'",
    ),
    Bad(
        DEBLUR,
        "name",
        "kernel-key-on-npy",
        lambda: _deblur("--kernel-key", "k"),
        CliFailed,
        r"key names a MATLAB variable and applies to \.mat files only",
    ),
    Bad(
        DEBLUR,
        "name",
        "method-unknown",
        lambda: _deblur("--method", "zz"),
        CliFailed,
        r"argument --method: invalid choice: 'zz'",
    ),
    Bad(
        DEBLUR,
        "name",
        "denoiser-unknown",
        lambda: _deblur("--denoiser", "zz"),
        CliFailed,
        rf"{U2} deblur: error: --denoiser: denoiser: cannot load it: name must be one of",
    ),
    Bad(
        DEBLUR,
        "file",
        "weights-text-file",
        lambda: _deblur("--weights", _file("w.pt", b"hi")),
        CliFailed,
        r"--denoiser: denoiser: cannot load it: weights .*w\.pt could not be read: it is a text",
    ),
    Bad(
        DEBLUR,
        "file",
        "pnpfast-weights-as-public-architecture",
        lambda: _deblur("--denoiser", "dncnn", "--weights", _weights()),
        CliFailed,
        r"weights .*w\.pt is a pnpfast weight file, .* load\('pnpfast', weights=\.\.\.\)",
    ),
    Bad(
        DEBLUR,
        "nan-inf",
        "noise-inf",
        lambda: _deblur("--noise", "inf"),
        CliFailed,
        r"argument --noise: the noise level must be a number > 0, got inf",
    ),
    Bad(
        DEBLUR,
        "name",
        "device-unknown",
        lambda: _deblur("--device", "tpu"),
        CliFailed,
        r"argument --device: invalid choice: 'tpu'",
    ),
    Bad(
        DEBLUR,
        "value",
        "iters-huge",
        lambda: _deblur("--iters", str(10**6)),
        CliFailed,
        r"argument --iters: expected at most 100000 iterations, got 1000000",
    ),
    Bad(
        DEBLUR,
        "file",
        "output-is-a-file",
        lambda: _deblur("-o", _file()),
        CliFailed,
        rf"{U2} deblur: error: -o: the output folder .*afile is a file",
    ),
    Bad(
        DEBLUR,
        "mismatch",
        "two-inputs-one-output",
        lambda: _deblur(inputs=[_in("x", "a.png"), _in("y", "a.png")]),
        CliFailed,
        r"x/a\.png and .*y/a\.png would both be written to .*a\.png; rename one",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "train-dir-missing",
        lambda: _train_cli(train_dir="/nonexistent/t"),
        CliFailed,
        rf"{U2} train: error: --train-dir: train_dir /nonexistent/t does not exist",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "train-dir-corrupt",
        lambda: _train_cli(train_dir=_corrupt()),
        CliFailed,
        r"--train-dir: train_dir .* has no usable image .*a\.png: not an image file",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "out-is-a-file",
        lambda: _train_cli(out=_file()),
        CliFailed,
        rf"{U2} train: error: --out: out_dir .*afile is a file, not a folder",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "out-under-a-file",
        lambda: _train_cli(out=_file() / "r"),
        CliFailed,
        r"--out: out_dir .*afile/r cannot be made: .*afile is a file",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "checkpoint-of-another-run",
        lambda: _train_twice("--lr", "0.5"),
        CliFailed,
        r"exit 2: pnpfast train: error: --out: .*checkpoint\.pt holds a run of another "
        r"configuration \(lr 0\.001 there, 0\.5 now\)",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "recipe-unknown",
        lambda: _train_cli("--recipe", "zz"),
        CliFailed,
        r"--recipe: recipe must be one of conditional-gray, .* not 'zz'",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "arch-unknown",
        lambda: _train_cli("--arch", "zz"),
        CliFailed,
        r"arch must be one of drunet, dncnn, bfcnn, gradient_step, not 'zz'",
    ),
    Bad(
        TRAIN_CLI,
        "type",
        "steps-text",
        lambda: _train_cli("--steps", "x"),
        CliFailed,
        r"argument --steps: invalid int value: 'x'",
    ),
    Bad(
        TRAIN_CLI,
        "value",
        "steps-0",
        lambda: _train_cli("--steps", "0"),
        CliFailed,
        r"--steps: steps must be an int >= 1, got 0",
    ),
    Bad(
        TRAIN_CLI,
        "nan-inf",
        "lr-nan",
        lambda: _train_cli("--lr", "nan"),
        CliFailed,
        r"--lr: lr must be a number > 0, got nan",
    ),
    Bad(
        TRAIN_CLI,
        "type",
        "sigma-text",
        lambda: _train_cli("--sigma", "a,b"),
        CliFailed,
        r"argument --sigma: expected LOW,HIGH",
    ),
    Bad(
        TRAIN_CLI,
        "value",
        "sigma-negative",
        lambda: _train_cli("--sigma", "-5"),
        CliFailed,
        r"--sigma: sigma must be \(low, high\)",
    ),
    Bad(
        TRAIN_CLI,
        "value",
        "sigma-above-255",
        lambda: _train_cli("--sigma", "0,300"),
        CliFailed,
        r"--sigma: sigma must be \(low, high\) on the \[0, 1\] scale .* <= 1",
    ),
    Bad(
        TRAIN_CLI,
        "value",
        "seed-2**64",
        lambda: _train_cli("--seed", str(2**64)),
        CliFailed,
        r"--seed: seed must be an int in 0\.\.2\*\*63 - 2",
    ),
    Bad(
        TRAIN_CLI,
        "value",
        "depth-negative",
        lambda: _train_cli("--depth", "-1"),
        CliFailed,
        r"exit 2: pnpfast train: error: arch dncnn: depth must be an int in \[3, 1000\], not -1",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "flag-of-another-architecture",
        lambda: _train_cli("--widths", "4,8"),
        CliFailed,
        r"arch: dncnn does not take widths",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "loss-unknown",
        lambda: _train_cli("--loss", "zz"),
        CliFailed,
        r"--loss: loss must be one of mse, .* not 'zz'",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "loss-option-unknown",
        lambda: _train_cli("--loss-option", "zz=1"),
        CliFailed,
        r"--loss-option: loss_options of loss mse: .*'zz'",
    ),
    Bad(
        TRAIN_CLI,
        "type",
        "loss-option-not-key-value",
        lambda: _train_cli("--loss-option", "zz"),
        CliFailed,
        r"argument --loss-option: 'zz' is not KEY=VALUE",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "init-text-file",
        lambda: _train_cli("--init", _file("i.pt", b"hi")),
        CliFailed,
        r"--init: init: weights .*i\.pt could not be read",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "device-unknown",
        lambda: _train_cli("--device", "tpu"),
        CliFailed,
        r"--device: device must be auto, cpu, cuda or cuda:N, got 'tpu'",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "precision-unknown",
        lambda: _train_cli("--precision", "fp8"),
        CliFailed,
        r"--precision: precision must be one of auto, fp32, bf16, fp16",
    ),
    Bad(
        TRAIN_CLI,
        "value",
        "clip-negative",
        lambda: _train_cli("--clip", "-1"),
        CliFailed,
        r"--clip: clip must be None or a number > 0",
    ),
    Bad(
        TRAIN_CLI,
        "file",
        "val-dir-missing",
        lambda: _train_cli("--val-dir", "/nonexistent/v"),
        CliFailed,
        r"--val-dir: val_dir /nonexistent/v does not exist",
    ),
    Bad(
        TRAIN_CLI,
        "name",
        "unknown-flag",
        lambda: _train_cli("--epochs", "3"),
        CliFailed,
        r"exit 2: pnpfast: error: unrecognized arguments: --epochs 3",
    ),
    Bad(
        EXPORT,
        "file",
        "source-missing",
        lambda: cli("export", "/nonexistent/w.pt", "x.pt"),
        CliFailed,
        rf"{U2} export: error: weights file not found: /nonexistent/w\.pt",
    ),
    Bad(
        EXPORT,
        "file",
        "source-text",
        lambda: cli("export", _file("w.pt", b"hi"), folder() / "x.pt"),
        CliFailed,
        r"export: error: weights .*w\.pt could not be read: it is a text file",
    ),
    Bad(
        EXPORT,
        "type",
        "meta-not-key-value",
        lambda: cli("export", _weights(), folder() / "x.pt", "--meta", "zz"),
        CliFailed,
        r"export: error: --meta takes KEY=VALUE, got 'zz'",
    ),
    Bad(
        EXPORT,
        "file",
        "target-under-a-file",
        lambda: cli("export", _weights(), _file() / "x.pt"),
        CliFailed,
        r"export: error: cannot write .*afile/x\.pt: .*afile is a file, not a folder",
    ),
    Good(
        EXPORT,
        "dtype",
        "float32-round-trip",
        lambda: _exported("--float32"),
        lambda: _net().state_dict()["first.weight"],
        0.0,
    ),
    Good(
        EXPORT,
        "dtype",
        "float16",
        lambda: _exported(),
        lambda: _net().state_dict()["first.weight"].half().float(),
        0.0,
    ),
    Bad(
        BACKENDS,
        "name",
        "unknown-flag",
        lambda: cli("backends", "--all"),
        CliFailed,
        r"exit 2: pnpfast: error: unrecognized arguments: --all",
    ),
    Bad(
        BACKENDS,
        "name",
        "env-backend-unknown-subprocess",
        lambda: cli_process("backends", env={"PNPFAST_BACKEND": "fastest"}),
        CliFailed,
        r"exit 2: pnpfast backends: error: PNPFAST_BACKEND must be one of cuda, triton, "
        r"reference, not 'fastest'",
    ),
    Bad(
        BACKENDS,
        "value",
        "env-triton-interpret-unknown",
        lambda: _backends_with(TRITON_INTERPRET="maybe"),
        CliFailed,
        r"exit 2: pnpfast backends: error: TRITON_INTERPRET must be .* not 'maybe'",
    ),
    Good(
        BACKENDS,
        "name",
        "env-backend-reference",
        lambda: cli("backends", env={"PNPFAST_BACKEND": "reference"}),
        lambda: 0,
        0,
    ),
]


def _command_raising(exc: Exception, env: dict | None = None) -> int:
    """``pnpfast backends`` with its command replaced by one raising ``exc`` (a bug's stand-in)."""
    import pnpfast.cli

    def fail(args):
        raise exc

    saved = pnpfast.cli.COMMANDS["backends"]
    pnpfast.cli.COMMANDS["backends"] = fail
    try:
        return cli("backends", env=env)
    finally:
        pnpfast.cli.COMMANDS["backends"] = saved


def _traceback_printed(exc: Exception) -> bool:
    """With PNPFAST_TRACEBACK=1 a command's unexpected error prints its whole traceback (exit 1)."""
    import pnpfast.cli

    def fail(args):
        raise exc

    saved, err = pnpfast.cli.COMMANDS["backends"], textio.StringIO()
    pnpfast.cli.COMMANDS["backends"] = fail
    os.environ["PNPFAST_TRACEBACK"] = "1"
    try:
        with contextlib.redirect_stderr(err):
            code = main(["backends"])
    finally:
        pnpfast.cli.COMMANDS["backends"] = saved
        del os.environ["PNPFAST_TRACEBACK"]
    return code == 1 and "Traceback" in err.getvalue() and "in fail" in err.getvalue()


def _nan_kernel() -> Path:
    path = folder() / "nan.npy"
    np.save(path, np.full((3, 3), np.nan))
    return path


def _backends_with(**env) -> int:
    from pnpfast import dispatch

    dispatch.clear_caches()
    try:
        return cli("backends", env=env)
    finally:
        dispatch.clear_caches()


CASES = [*TRAIN_CONFIG, *CHECK_RUN, *TRAIN, *DATA, *LOSS, *CLI]


@params(CASES)
def test_fuzz(case):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: more threads than free cores only slow them
    try:
        check(case)
    finally:
        torch.set_num_threads(threads)
