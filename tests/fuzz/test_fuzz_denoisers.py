"""Fuzz table (issue 17) of pnpfast.denoisers: the constructors (DnCNN, DRUNet, BFCNN,
GaussianSmoothing, TotalVariation, GradientStep, ByChannels) with bad arguments, the call
D(x, sigma) with bad x and sigma, and ``load`` with bad names, devices and weight files
(tampered, truncated, damaged; pnpfast's own files and public ones).

Tiny networks (3 layers, 8 features) on 8x8 images. Good rows compare with an independent
oracle: a closed form written here (Gaussian smoothing in NumPy, the centre taps of DnCNN on a
1x1 image, TV of one pixel), the same network on a contiguous float32 copy (layouts, half
precision), or the network built in memory (a weight file read back). Weight files are written
into a temporary folder, removed at exit.
"""

import argparse
import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fuzz_cases import Bad, Good, check, params, scratch_folder

from pnpfast.denoisers import (
    BFCNN,
    ByChannels,
    DnCNN,
    DRUNet,
    GaussianSmoothing,
    GradientStep,
    TotalVariation,
    load,
)
from pnpfast.denoisers import weight_file as wf

DN = "pnpfast.denoisers.DnCNN"
DR = "pnpfast.denoisers.DRUNet"
BF = "pnpfast.denoisers.BFCNN"
GS = "pnpfast.denoisers.GaussianSmoothing"
TV = "pnpfast.denoisers.TotalVariation"
GR = "pnpfast.denoisers.GradientStep"
BC = "pnpfast.denoisers.ByChannels"
LOAD = "pnpfast.denoisers.load"

# ---------------------------------------------------------------------------------------------
# tiny denoisers, built once (call and oracle of a row must see the same weights)


def folder() -> Path:
    """A new empty folder for one row (removed at exit)."""
    return scratch_folder("denoisers")


@functools.cache
def dncnn() -> DnCNN:
    torch.manual_seed(0)
    net = DnCNN(1, 3, 8).eval()
    with torch.no_grad():  # batch-norm statistics away from the identity, so they matter
        for bn in net.norms:
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
    return net


@functools.cache
def drunet() -> DRUNet:
    torch.manual_seed(1)
    return DRUNet(1, (4, 8), 1).eval()


@functools.cache
def bfcnn() -> BFCNN:
    torch.manual_seed(2)
    return BFCNN(1, 3, 8).eval()


class _Smooth(torch.nn.Module):
    """A smooth tiny network for GradientStep (tanh of one convolution)."""

    channels = 1

    def __init__(self, out=None):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.out = out

    def forward(self, x, sigma):
        y = torch.tanh(self.conv(x))
        return y if self.out is None else self.out(y)


@functools.cache
def gradient_step() -> GradientStep:
    torch.manual_seed(5)
    return GradientStep(DRUNet(1, (4, 8), 1, activation="elu")).eval()


def image(b: int = 2, c: int = 1, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def with_nan(x: torch.Tensor, value: float = math.nan) -> torch.Tensor:
    x = x.clone()
    x[0, 0, 2, 3] = value
    return x


def nan_stays_in_its_image(D, value: float = math.nan) -> torch.Tensor:
    """D on a batch whose image 0 holds one NaN/Inf pixel: image 0's output is not finite (the
    value is not hidden) and image 1's output is returned for comparison."""
    out = D(with_nan(image(), value), 0.1)
    assert not bool(torch.isfinite(out[0]).all()), "image 0 came out finite"
    return out[1:]


def ref(D, x: torch.Tensor, sigma=0.1) -> torch.Tensor:
    """D on a contiguous float32 copy (checked against oracles in tests/denoisers)."""
    return D(x.float().contiguous(), sigma)


def dncnn_centre(net: DnCNN, x: torch.Tensor) -> torch.Tensor:
    """DnCNN on 1x1 images, float64: with zero padding each 3x3 convolution reduces to its
    centre tap, so the network is a stack of dense layers: x - last(relu(bn(hidden(...))))."""
    h = x.double().flatten(1)

    def dense(conv, h):
        w = conv.weight[:, :, 1, 1].double()
        return h @ w.T + (conv.bias.double() if conv.bias is not None else 0)

    h = torch.relu(dense(net.first, h))
    for conv, bn in zip(net.hidden, net.norms, strict=True):
        h = dense(conv, h)
        h = (h - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps)
        h = torch.relu(h * bn.weight.double() + bn.bias.double())
    return x.double() - dense(net.last, h).view_as(x)


def gaussian_numpy(x: torch.Tensor, std_pixels: float) -> torch.Tensor:
    """The Gaussian multiplier exp(-2 pi^2 s^2 (fy^2 + fx^2)) applied with NumPy's FFT."""
    a = x.double().numpy()
    H, W = a.shape[-2:]
    f2 = np.fft.fftfreq(H)[:, None] ** 2 + np.fft.rfftfreq(W)[None, :] ** 2
    T = np.exp(-2 * np.pi**2 * std_pixels**2 * f2)
    return torch.from_numpy(np.fft.irfft2(np.fft.rfft2(a) * T, s=(H, W)))


def channel_means(x: torch.Tensor) -> torch.Tensor:
    return x.double().mean(dim=(2, 3), keepdim=True).expand_as(x)


# ---------------------------------------------------------------------------------------------
# weight files, written on the fly


@functools.cache
def saved_net() -> DRUNet:
    torch.manual_seed(4)
    return DRUNet(1, (4, 8), 1).eval()


def written(name: str = "net.pt", *, version: int = 2) -> Path:
    """saved_net() written by save_weights; version 1: as pnpfast wrote it before the checksum
    covered config and meta (tensor checksum only)."""
    path = wf.save_weights(saved_net(), folder() / name, meta={"step": 3, "note": "fuzz"})
    if version == 1:
        obj = torch.load(path, weights_only=True)
        obj.update(version=1, sha256=wf.tensor_checksum(obj["state_dict"]))
        torch.save(obj, path)
    return path


def edited(edit, name: str = "edited.pt", *, version: int = 2) -> Path:
    """A written file, loaded, changed by ``edit`` and saved with torch.save (the stored
    checksum kept as it was: what a hand edit or a corruption of the pickle leaves)."""
    path = written(name, version=version)
    obj = torch.load(path, weights_only=True)
    edit(obj)
    torch.save(obj, path)
    return path


def _scale_first_tensor(obj: dict) -> None:
    key = next(iter(obj["state_dict"]))
    obj["state_dict"][key] = obj["state_dict"][key] * 1.01


def truncated_public(folder_: Path) -> Path:
    path = folder_ / "bfcnn_truncated.pt"
    torch.save(bfcnn().state_dict(), path)
    path.write_bytes(path.read_bytes()[:400])
    return path


def public_with_nan() -> Path:
    path = folder() / "bfcnn_nan.pt"
    state = {k: v.clone() for k, v in bfcnn().state_dict().items()}
    state["conv_layers.1.weight"][0, 0, 1, 1] = math.nan
    torch.save(state, path)
    return path


def text_file(name: str) -> Path:
    path = folder() / name
    path.write_text("these are not weights\n")
    return path


def read_back(path: Path) -> torch.Tensor:
    return load(weights=path)(image(), 0.1)


# ---------------------------------------------------------------------------------------------
# the table

X = image


def _rows_for_every_network() -> list:
    """Rows that every denoiser of the package must pass alike."""
    nets = {
        "dncnn": dncnn,
        "drunet": drunet,
        "bfcnn": bfcnn,
        "gaussian": GaussianSmoothing,
        "tv": lambda: TotalVariation(iterations=5),
        "gradient-step": gradient_step,
    }
    entry = {
        "dncnn": DN,
        "drunet": DR,
        "bfcnn": BF,
        "gaussian": GS,
        "tv": TV,
        "gradient-step": GR,
    }
    rows = []
    for name, make in nets.items():
        e = entry[name] + ".forward"
        rows += [
            Bad(
                e,
                "rank",
                f"{name}:x-3d",
                lambda m=make: m()(X()[0], 0.1),
                ValueError,
                r"x must have shape \[B, C, H, W\] \(4 dimensions\), got \(1, 8, 8\)",
            ),
            Bad(
                e,
                "rank",
                f"{name}:x-5d",
                lambda m=make: m()(X()[None], 0.1),
                ValueError,
                r"x must have shape \[B, C, H, W\] \(4 dimensions\)",
            ),
            Bad(
                e,
                "dtype",
                f"{name}:x-int64",
                lambda m=make: m()((X() * 255).long(), 0.1),
                TypeError,
                r"x must have a floating dtype, not int64",
            ),
            Bad(
                e,
                "dtype",
                f"{name}:x-bool",
                lambda m=make: m()(X() > 0.5, 0.1),
                TypeError,
                r"x must have a floating dtype, not bool",
            ),
            Bad(
                e,
                "dtype",
                f"{name}:x-complex64",
                lambda m=make: m()(X().to(torch.complex64), 0.1),
                TypeError,
                r"x must have a floating dtype, not complex64",
            ),
            Bad(
                e,
                "type",
                f"{name}:x-ndarray",
                lambda m=make: m()(X().numpy(), 0.1),
                TypeError,
                r"x must be a torch.Tensor of shape \[B, C, H, W\], not ndarray",
            ),
            Bad(
                e,
                "size",
                f"{name}:batch-0",
                lambda m=make: m()(X(b=0), 0.1),
                ValueError,
                r"x has a batch of size 0 .*nothing to denoise",
            ),
            Bad(
                e,
                "size",
                f"{name}:height-0",
                lambda m=make: m()(X(h=0), 0.1),
                ValueError,
                r"x has a dimension of size 0 \(shape \(2, 1, 0, 8\)\)",
            ),
            Bad(
                e,
                "meta",
                f"{name}:x-meta",
                lambda m=make: m()(X().to("meta"), 0.1),
                ValueError,
                r"x is on the meta device \(it holds no data\): move it to cpu or cuda",
            ),
            Bad(
                e,
                "meta",
                f"{name}:sigma-meta",
                lambda m=make: m()(X(), torch.full((2,), 0.1, device="meta")),
                ValueError,
                r"sigma is on the meta device",
            ),
            Bad(
                e,
                "mismatch",
                f"{name}:sigma-length-3",
                lambda m=make: m()(X(), torch.ones(3)),
                ValueError,
                r"sigma must be a float or a tensor of length 2 \(one per image\)",
            ),
            Bad(
                e,
                "rank",
                f"{name}:sigma-2d",
                lambda m=make: m()(X(), torch.ones(2, 1)),
                ValueError,
                r"sigma must be a float or a tensor of length 2 .*shape \(2, 1\)",
            ),
            Bad(
                e,
                "value",
                f"{name}:sigma-negative",
                lambda m=make: m()(X(), -0.1),
                ValueError,
                r"sigma must be >= 0, got -0.1",
            ),
            Bad(
                e,
                "nan-inf",
                f"{name}:sigma-nan",
                lambda m=make: m()(X(), math.nan),
                ValueError,
                r"sigma must be finite, got nan",
            ),
            Bad(
                e,
                "nan-inf",
                f"{name}:sigma-inf",
                lambda m=make: m()(X(), math.inf),
                ValueError,
                r"sigma must be finite, got inf",
            ),
            Bad(
                e,
                "type",
                f"{name}:sigma-str",
                lambda m=make: m()(X(), "25"),
                TypeError,
                r"sigma must be a float or a tensor of length 2, not str",
            ),
            Bad(
                e,
                "type",
                f"{name}:sigma-bool",
                lambda m=make: m()(X(), True),
                TypeError,
                r"sigma must be a float or a tensor of length 2, not bool",
            ),
            Bad(
                e,
                "dtype",
                f"{name}:sigma-complex",
                lambda m=make: m()(X(), torch.full((2,), 0.1, dtype=torch.complex64)),
                TypeError,
                r"sigma must be real, not torch.complex64",
            ),
            Good(
                e,
                "nan-inf",
                f"{name}:nan-pixel-stays-in-its-image",
                lambda m=make: nan_stays_in_its_image(m()),
                lambda m=make: m()(X()[1:], 0.1),
            ),
            Good(
                e,
                "nan-inf",
                f"{name}:inf-pixel-stays-in-its-image",
                lambda m=make: nan_stays_in_its_image(m(), math.inf),
                lambda m=make: m()(X()[1:], 0.1),
            ),
            Good(
                e,
                "layout",
                f"{name}:channels-last",
                lambda m=make: m()(X().to(memory_format=torch.channels_last), 0.1),
                lambda m=make: ref(m(), X()),
                1e-6,
            ),
            Good(
                e,
                "layout",
                f"{name}:transposed-view",
                lambda m=make: m()(X().transpose(2, 3), 0.1),
                lambda m=make: ref(m(), X().transpose(2, 3)),
                1e-6,
            ),
            Good(
                e,
                "layout",
                f"{name}:strided-crop",
                lambda m=make: m()(X(h=16, w=16)[:, :, ::2, 1::2], 0.1),
                lambda m=make: ref(m(), X(h=16, w=16)[:, :, ::2, 1::2]),
                1e-6,
            ),
            Good(
                e,
                "layout",
                f"{name}:per-image-sigma-tensor",
                lambda m=make: m()(X(), torch.tensor([0.1, 0.1])),
                lambda m=make: ref(m(), X()),
                1e-6,
            ),
            # float16/bfloat16: the networks run in their weights' float32 and cast back; the
            # classical ones compute in float32: the float32 result rounded is the oracle
            Good(
                e,
                "dtype",
                f"{name}:x-float16",
                lambda m=make: m()(X().half(), 0.1).float(),
                lambda m=make: ref(m(), X().half()).half().float(),
                2e-3,
            ),
            Good(
                e,
                "dtype",
                f"{name}:x-bfloat16",
                lambda m=make: m()(X().bfloat16(), 0.1).float(),
                lambda m=make: ref(m(), X().bfloat16()).bfloat16().float(),
                1.6e-2,
            ),
            Good(
                e,
                "dtype",
                f"{name}:x-float64",
                lambda m=make: m()(X().double(), 0.1),
                lambda m=make: ref(m(), X()).double(),
                1e-5,
            ),
        ]
    return rows


CASES = [
    *_rows_for_every_network(),
    # ---- DnCNN ---------------------------------------------------------------------------
    Bad(
        DN,
        "value",
        "channels-0",
        lambda: DnCNN(0, 3, 8),
        ValueError,
        r"channels must be an int >= 1, not 0",
    ),
    Bad(
        DN,
        "value",
        "channels-negative",
        lambda: DnCNN(-1, 3, 8),
        ValueError,
        r"channels must be an int >= 1, not -1",
    ),
    Bad(
        DN,
        "type",
        "channels-float",
        lambda: DnCNN(1.5, 3, 8),
        TypeError,
        r"channels must be an int >= 1, not float 1\.",
    ),
    Bad(
        DN,
        "type",
        "channels-bool",
        lambda: DnCNN(True, 3, 8),
        TypeError,
        r"channels must be an int >= 1, not bool True",
    ),
    Bad(
        DN,
        "value",
        "depth-negative",
        lambda: DnCNN(1, -1, 8),
        ValueError,
        r"depth must be an int in \[3, 1000\], not -1",
    ),
    Bad(
        DN,
        "value",
        "depth-2",
        lambda: DnCNN(1, 2, 8),
        ValueError,
        r"depth must be an int in \[3, 1000\], not 2",
    ),
    Bad(
        DN,
        "value",
        "depth-10**6",
        lambda: DnCNN(1, 10**6, 8),
        ValueError,
        r"depth must be an int in \[3, 1000\], not 1000000",
    ),
    Bad(
        DN,
        "type",
        "depth-float",
        lambda: DnCNN(1, 3.5, 8),
        TypeError,
        r"depth must be an int in \[3, 1000\], not float 3\.5",
    ),
    Bad(
        DN,
        "value",
        "features-0",
        lambda: DnCNN(1, 3, 0),
        ValueError,
        r"features must be an int >= 1, not 0",
    ),
    Bad(
        DN,
        "type",
        "bias-str",
        lambda: DnCNN(1, 3, 8, bias="no"),
        TypeError,
        r"bias must be True or False, not str",
    ),
    Bad(
        DN,
        "name",
        "norm-unknown",
        lambda: DnCNN(1, 3, 8, norm="layer"),
        ValueError,
        r"norm must be 'batch', 'bias-free' or 'none', not 'layer'",
    ),
    Bad(
        DN + ".forward",
        "mismatch",
        "x-2-channels",
        lambda: dncnn()(X(c=2), 0.1),
        ValueError,
        r"x has 2 channels but this denoiser takes 1",
    ),
    Good(
        DN + ".forward",
        "size",
        "1x1-centre-taps",
        lambda: dncnn()(X(h=1, w=1), 0.1),
        lambda: dncnn_centre(dncnn(), X(h=1, w=1)),
        1e-5,
    ),
    Good(
        DN + ".forward",
        "nan-inf",
        "blind-ignores-nan-sigma-tensor",
        lambda: dncnn()(X(), torch.tensor([0.1, math.nan])),
        lambda: ref(dncnn(), X()),
        0.0,
    ),
    # ---- DRUNet --------------------------------------------------------------------------
    Bad(
        DR,
        "value",
        "channels-0",
        lambda: DRUNet(0, (4, 8), 1),
        ValueError,
        r"channels must be an int >= 1, not 0",
    ),
    Bad(
        DR,
        "type",
        "channels-float",
        lambda: DRUNet(1.0, (4, 8), 1),
        TypeError,
        r"channels must be an int >= 1, not float 1\.",
    ),
    Bad(
        DR,
        "value",
        "widths-empty",
        lambda: DRUNet(1, (), 1),
        ValueError,
        r"widths must be a non-empty tuple of positive ints, got \(\)",
    ),
    Bad(
        DR,
        "value",
        "widths-zero",
        lambda: DRUNet(1, (4, 0), 1),
        ValueError,
        r"widths must be a non-empty tuple of positive ints, got \(4, 0\)",
    ),
    Bad(
        DR,
        "type",
        "widths-int",
        lambda: DRUNet(1, 4, 1),
        TypeError,
        r"widths must be a tuple of ints \(one per level\), not int",
    ),
    Bad(
        DR,
        "type",
        "widths-float-entry",
        lambda: DRUNet(1, (4.5,), 1),
        TypeError,
        r"widths must be a tuple of ints, got \(4.5,\)",
    ),
    Bad(
        DR,
        "value",
        "widths-11-levels",
        lambda: DRUNet(1, (2,) * 11, 0),
        ValueError,
        r"widths must have at most 10 levels .*got 11",
    ),
    Bad(
        DR,
        "value",
        "blocks-negative",
        lambda: DRUNet(1, (4, 8), -1),
        ValueError,
        r"blocks must be an int in \[0, 100\], not -1",
    ),
    Bad(
        DR,
        "value",
        "blocks-101",
        lambda: DRUNet(1, (4, 8), 101),
        ValueError,
        r"blocks must be an int in \[0, 100\], not 101",
    ),
    Bad(
        DR,
        "type",
        "blocks-float",
        lambda: DRUNet(1, (4, 8), 1.5),
        TypeError,
        r"blocks must be an int in \[0, 100\], not float 1\.5",
    ),
    Bad(
        DR,
        "name",
        "activation-unknown",
        lambda: DRUNet(1, (4, 8), 1, activation="tanh"),
        ValueError,
        r"activation must be one of relu, elu, softplus, silu, not 'tanh'",
    ),
    Bad(
        DR,
        "type",
        "noise_map-str",
        lambda: DRUNet(1, (4, 8), 1, noise_map="no"),
        TypeError,
        r"noise_map must be True or False, not str",
    ),
    Bad(
        DR,
        "type",
        "residual-int",
        lambda: DRUNet(1, (4, 8), 1, residual=1),
        TypeError,
        r"residual must be True or False, not int",
    ),
    Bad(
        DR + ".forward",
        "nan-inf",
        "noise-map-nan-sigma-tensor",
        lambda: drunet()(X(), torch.tensor([0.1, math.nan])),
        ValueError,
        r"sigma must be finite, got nan",
    ),
    Bad(
        DR + ".forward",
        "mismatch",
        "x-3-channels",
        lambda: drunet()(X(c=3), 0.1),
        ValueError,
        r"x has 3 channels but this denoiser takes 1",
    ),
    Good(
        DR + ".forward",
        "size",
        "odd-1x3-is-the-crop-of-its-replicate-padding",
        lambda: drunet()(X(h=1, w=3), 0.1),
        lambda: drunet()(F.pad(X(h=1, w=3), (0, 1, 0, 1), mode="replicate"), 0.1)[..., :1, :3],
        1e-6,
    ),
    # ---- BFCNN ---------------------------------------------------------------------------
    Bad(
        BF,
        "value",
        "channels-0",
        lambda: BFCNN(0, 3, 8),
        ValueError,
        r"channels must be an int >= 1, not 0",
    ),
    Bad(
        BF,
        "value",
        "depth-1001",
        lambda: BFCNN(1, 1001, 8),
        ValueError,
        r"depth must be an int in \[3, 1000\], not 1001",
    ),
    Bad(
        BF,
        "value",
        "features-0",
        lambda: BFCNN(1, 3, 0),
        ValueError,
        r"features must be an int >= 1, not 0",
    ),
    Bad(
        BF,
        "nan-inf",
        "momentum-nan",
        lambda: BFCNN(1, 3, 8, momentum=math.nan),
        ValueError,
        r"momentum must be a finite number in \[0, 1\], not nan",
    ),
    Bad(
        BF,
        "value",
        "momentum-2",
        lambda: BFCNN(1, 3, 8, momentum=2.0),
        ValueError,
        r"momentum must be a finite number in \[0, 1\], not 2\.0",
    ),
    Bad(
        BF,
        "type",
        "momentum-str",
        lambda: BFCNN(1, 3, 8, momentum="0.1"),
        TypeError,
        r"momentum must be a finite number in \[0, 1\], not str '0\.1'",
    ),
    Good(
        BF + ".forward",
        "value",
        "positively-homogeneous",
        lambda: bfcnn()(3.0 * X(), 0.1),
        lambda: 3.0 * ref(bfcnn(), X()),
        1e-5,
    ),
    # ---- GaussianSmoothing ---------------------------------------------------------------
    Bad(
        GS,
        "value",
        "std-negative",
        lambda: GaussianSmoothing(-1.0),
        ValueError,
        r"std \(pixels\) must be a finite number >= 0, not -1\.0",
    ),
    Bad(
        GS,
        "nan-inf",
        "std-nan",
        lambda: GaussianSmoothing(math.nan),
        ValueError,
        r"std \(pixels\) must be a finite number >= 0, not nan",
    ),
    Bad(
        GS,
        "nan-inf",
        "std-inf",
        lambda: GaussianSmoothing(math.inf),
        ValueError,
        r"std \(pixels\) must be a finite number >= 0, not inf",
    ),
    Bad(
        GS,
        "type",
        "std-str",
        lambda: GaussianSmoothing("1"),
        TypeError,
        r"std \(pixels\) must be a finite number >= 0, not str '1'",
    ),
    Bad(
        GS,
        "type",
        "std-bool",
        lambda: GaussianSmoothing(True),
        TypeError,
        r"std \(pixels\) must be a finite number >= 0, not bool True",
    ),
    Bad(
        GS,
        "type",
        "std-tensor",
        lambda: GaussianSmoothing(torch.tensor(1.0)),
        TypeError,
        r"std \(pixels\) must be a finite number >= 0, not Tensor tensor\(1\.\)",
    ),
    Good(
        GS + ".forward",
        "value",
        "closed-form-numpy",
        lambda: GaussianSmoothing(1.5)(X(c=3, h=6, w=9), 0.0),
        lambda: gaussian_numpy(X(c=3, h=6, w=9), 1.5),
        1e-6,
    ),
    Good(
        GS + ".forward",
        "dtype",
        "float16-against-numpy",
        lambda: GaussianSmoothing(1.0)(X().half(), 0.0).double(),
        lambda: gaussian_numpy(X().half(), 1.0),
        1e-3,
    ),
    Good(
        GS + ".forward",
        "size",
        "1x1-is-the-identity",
        lambda: GaussianSmoothing()(X(h=1, w=1), 0.5),
        lambda: X(h=1, w=1),
        0.0,
    ),
    Good(
        GS + ".forward",
        "value",
        "huge-sigma-gives-the-channel-means",
        lambda: GaussianSmoothing()(X(c=2), 1e30),
        lambda: channel_means(X(c=2)),
        1e-6,
    ),
    Good(
        GS + ".forward",
        "value",
        "huge-std-gives-the-channel-means",
        lambda: GaussianSmoothing(1e30)(X(), 0.0),
        lambda: channel_means(X()),
        1e-6,
    ),
    Good(
        GS + ".forward",
        "mismatch",
        "any-channel-count",
        lambda: GaussianSmoothing(1.0)(X(c=5), 0.0),
        lambda: gaussian_numpy(X(c=5), 1.0),
        1e-6,
    ),
    # ---- TotalVariation ------------------------------------------------------------------
    Bad(
        TV,
        "value",
        "strength-negative",
        lambda: TotalVariation(-1.0),
        ValueError,
        r"strength must be a finite number >= 0, not -1\.0",
    ),
    Bad(
        TV,
        "nan-inf",
        "strength-nan",
        lambda: TotalVariation(math.nan),
        ValueError,
        r"strength must be a finite number >= 0, not nan",
    ),
    Bad(
        TV,
        "type",
        "strength-str",
        lambda: TotalVariation("1"),
        TypeError,
        r"strength must be a finite number >= 0, not str '1'",
    ),
    Bad(
        TV,
        "value",
        "iterations-0",
        lambda: TotalVariation(1.0, 0),
        ValueError,
        r"iterations must be an int in \[1, 100000\], not 0",
    ),
    Bad(
        TV,
        "value",
        "iterations-10**9",
        lambda: TotalVariation(1.0, 10**9),
        ValueError,
        r"iterations must be an int in \[1, 100000\], not 1000000000",
    ),
    Bad(
        TV,
        "type",
        "iterations-float",
        lambda: TotalVariation(1.0, 1.5),
        TypeError,
        r"iterations must be an int in \[1, 100000\], not float 1\.5",
    ),
    Bad(
        TV,
        "type",
        "iterations-bool",
        lambda: TotalVariation(1.0, True),
        TypeError,
        r"iterations must be an int in \[1, 100000\], not bool True",
    ),
    Good(
        TV + ".forward",
        "size",
        "1x1-has-no-variation",
        lambda: TotalVariation(1.0, 5)(X(h=1, w=1), 0.5),
        lambda: X(h=1, w=1),
        0.0,
    ),
    Good(
        TV + ".forward",
        "value",
        "sigma-0-is-the-identity",
        lambda: TotalVariation(1.0, 5)(X(), 0.0),
        lambda: X(),
        0.0,
    ),
    Good(
        TV + ".forward",
        "value",
        "constant-image-is-kept",
        lambda: TotalVariation(1.0, 5)(torch.full((2, 1, 8, 8), 0.3), 0.2),
        lambda: torch.full((2, 1, 8, 8), 0.3),
        1e-6,
    ),
    # ---- GradientStep --------------------------------------------------------------------
    Bad(
        GR,
        "type",
        "network-none",
        lambda: GradientStep(None),
        TypeError,
        r"network must be a torch.nn.Module .*not NoneType",
    ),
    Bad(
        GR,
        "type",
        "network-function",
        lambda: GradientStep(lambda x, s: x),
        TypeError,
        r"network must be a torch.nn.Module .*not function",
    ),
    Bad(
        GR,
        "value",
        "channels-0",
        lambda: GradientStep(torch.nn.Identity(), 0),
        ValueError,
        r"channels must be an int >= 1, not 0",
    ),
    Bad(
        GR,
        "mismatch",
        "channels-3-for-a-gray-network",
        lambda: GradientStep(_Smooth(), 3),
        ValueError,
        r"channels is 3 but the network takes 1",
    ),
    Bad(
        GR + ".forward",
        "denoiser",
        "network-returns-a-crop",
        lambda: GradientStep(_Smooth(lambda y: y[..., :4, :4]))(X(), 0.1),
        ValueError,
        r"the network of GradientStep \(_Smooth\) returned shape \(2, 1, 4, 4\)",
    ),
    Bad(
        GR + ".forward",
        "denoiser",
        "network-returns-float64",
        lambda: GradientStep(_Smooth(lambda y: y.double()))(X(), 0.1),
        ValueError,
        r"the network of GradientStep \(_Smooth\) returned .*torch.float64.* it must return "
        r"x's shape and dtype",
    ),
    Good(
        GR + ".forward",
        "denoiser",
        "network-returning-nan-gives-nan-not-a-number",
        lambda: torch.isnan(GradientStep(_Smooth(lambda y: y * math.nan))(X(), 0.1)).all().double(),
        lambda: 1.0,
        0.0,
    ),
    Good(
        GR + ".potential",
        "value",
        "closed-form",
        lambda: gradient_step().potential(X(), 0.1),
        lambda: 0.5 * (X() - gradient_step().network(X(), 0.1)).double().flatten(1).pow(2).sum(1),
        1e-5,
    ),
    # ---- ByChannels ----------------------------------------------------------------------
    Bad(
        BC,
        "value",
        "empty",
        lambda: ByChannels({}),
        ValueError,
        r"networks must hold at least one denoiser",
    ),
    Bad(
        BC,
        "type",
        "a-list",
        lambda: ByChannels([dncnn()]),
        TypeError,
        r"networks must be a dict \{channels: denoiser\}, not list",
    ),
    Bad(
        BC,
        "value",
        "key-0",
        lambda: ByChannels({0: dncnn()}),
        ValueError,
        r"networks key 0 \(a channel count\) must be an int >= 1, not 0",
    ),
    Bad(
        BC,
        "type",
        "key-str",
        lambda: ByChannels({"1": dncnn()}),
        TypeError,
        r"networks key '1' \(a channel count\) must be an int >= 1, not str '1'",
    ),
    Bad(
        BC,
        "type",
        "value-a-function",
        lambda: ByChannels({1: lambda x, s: x}),
        TypeError,
        r"networks\[1\] must be a torch.nn.Module denoiser, not function",
    ),
    Bad(
        BC,
        "mismatch",
        "key-3-for-a-gray-network",
        lambda: ByChannels({3: dncnn()}),
        ValueError,
        r"networks\[3\] takes 1 channels, not 3",
    ),
    Good(
        BC + ".forward",
        "type",
        "a-plain-module-without-blind",
        lambda: ByChannels({1: _Smooth()})(X(), 0.1),
        lambda: torch.tanh(_Smooth().conv(X())),
        1e-6,
    ),
    Bad(
        BC + ".forward",
        "mismatch",
        "x-with-2-channels",
        lambda: ByChannels({1: dncnn()})(X(c=2), 0.1),
        ValueError,
        r"x has 2 channels but this denoiser takes 1",
    ),
    Bad(
        BC + ".potential_and_gradient",
        "type",
        "not-a-gradient-step-network",
        lambda: ByChannels({1: dncnn()}).potential_and_gradient(X(), 0.1),
        TypeError,
        r"DnCNN is not a gradient-step denoiser",
    ),
    Good(
        BC + ".forward",
        "layout",
        "gray-picks-the-gray-network",
        lambda: ByChannels({1: dncnn(), 3: DnCNN(3, 3, 8).eval()})(X(), 0.1),
        lambda: ref(dncnn(), X()),
        0.0,
    ),
    # ---- load: names, devices -------------------------------------------------------------
    Bad(
        LOAD,
        "name",
        "unknown-name",
        lambda: load("dncnn-99"),
        ValueError,
        r"name must be one of conditional, blind, .* not 'dncnn-99'",
    ),
    Bad(LOAD, "name", "empty-name", lambda: load(""), ValueError, r"name must be one of .*not ''"),
    Bad(
        LOAD, "type", "name-int", lambda: load(3), TypeError, r"name must be a str or None, not int"
    ),
    Bad(
        LOAD,
        "value",
        "architecture-without-weights",
        lambda: load("dncnn"),
        ValueError,
        r"weights \(the path of a weight file\) is required for 'dncnn'",
    ),
    Bad(
        LOAD,
        "value",
        "weights-for-a-classical-denoiser",
        lambda: load("gaussian", weights="w.pt"),
        ValueError,
        r"weights is not used by 'gaussian'",
    ),
    Bad(
        LOAD,
        "type",
        "weights-int",
        lambda: load("pnpfast", weights=3),
        TypeError,
        r"weights must be the path of a weight file \(str or os.PathLike\) or None, not int",
    ),
    Bad(
        LOAD,
        "name",
        "device-unknown",
        lambda: load("gaussian", device="gpu0"),
        ValueError,
        r"device 'gpu0' is not a torch device",
    ),
    Bad(
        LOAD,
        "value",
        "device-cuda-9",
        lambda: load("blind", device="cuda:9"),
        ValueError,
        r"device 'cuda:9' is not available here \(\d+ CUDA device\(s\)\)",
    ),
    Bad(
        LOAD,
        "meta",
        "device-meta",
        lambda: load("tv", device="meta"),
        ValueError,
        r"device 'meta' holds no data",
    ),
    Bad(
        LOAD,
        "type",
        "device-float",
        lambda: load("tv", device=0.5),
        TypeError,
        r"device must be a str or torch.device .*not float",
    ),
    Good(
        LOAD,
        "name",
        "name-case-and-spaces",
        lambda: load(" Gaussian ")(X(), 0.1),
        lambda: gaussian_numpy(X(), 0.1 * 255 / 25),
        1e-6,
    ),
    # ---- load: files -----------------------------------------------------------------------
    Bad(
        LOAD,
        "file",
        "missing",
        lambda: load(weights=folder() / "absent.pt"),
        FileNotFoundError,
        r"weights file not found: .*absent\.pt",
    ),
    Bad(
        LOAD,
        "file",
        "empty-path",
        lambda: load(weights=""),
        FileNotFoundError,
        r"weights file not found: the path is empty",
    ),
    Bad(
        LOAD,
        "file",
        "a-directory",
        lambda: load(weights=folder()),
        ValueError,
        r"weights must be a file, .* is a directory",
    ),
    Bad(
        LOAD,
        "file",
        "text-file",
        lambda: load(weights=text_file("notes.pt")),
        ValueError,
        r"weights .*notes\.pt could not be read: it is a text file",
    ),
    Bad(
        LOAD,
        "file",
        "config-noise_map-flipped",
        lambda: load(weights=edited(lambda o: o["config"].update(noise_map=False), "flag.pt")),
        ValueError,
        r"flag\.pt: checksum mismatch: .*sha256 of its tensors, config and meta",
    ),
    Bad(
        LOAD,
        "file",
        "config-arch-changed",
        lambda: load(
            "pnpfast", weights=edited(lambda o: o["config"].update(activation="elu"), "arch.pt")
        ),
        ValueError,
        r"arch\.pt: checksum mismatch: the file was modified or corrupted",
    ),
    Bad(
        LOAD,
        "file",
        "meta-changed",
        lambda: load(weights=edited(lambda o: o["meta"].update(step=4), "meta.pt")),
        ValueError,
        r"meta\.pt: checksum mismatch",
    ),
    Bad(
        LOAD,
        "file",
        "meta-key-added",
        lambda: load(weights=edited(lambda o: o["meta"].update(extra=None), "meta2.pt")),
        ValueError,
        r"meta2\.pt: checksum mismatch",
    ),
    Bad(
        LOAD,
        "file",
        "tensor-scaled",
        lambda: load(weights=edited(_scale_first_tensor, "tensor.pt")),
        ValueError,
        r"tensor\.pt: checksum mismatch",
    ),
    Bad(
        LOAD,
        "file",
        "checksum-not-a-string",
        lambda: load(weights=edited(lambda o: o.update(sha256=123), "sha.pt")),
        ValueError,
        r"sha\.pt: checksum mismatch",
    ),
    Bad(
        LOAD,
        "file",
        "version-3",
        lambda: load(weights=edited(lambda o: o.update(version=3), "v3.pt")),
        ValueError,
        r"v3\.pt: unknown weight-file version 3; this pnpfast reads versions 1, 2",
    ),
    Bad(
        LOAD,
        "file",
        "version-missing",
        lambda: load(weights=edited(lambda o: o.pop("version"), "v0.pt")),
        ValueError,
        r"v0\.pt: unknown weight-file version None",
    ),
    Bad(
        LOAD,
        "file",
        "meta-holding-an-object",
        lambda: load(
            weights=edited(lambda o: o["meta"].update(args=argparse.Namespace(a=1)), "object.pt")
        ),
        ValueError,
        r"object\.pt: 'config' or 'meta' holds a Namespace",
    ),
    Bad(
        LOAD,
        "file",
        "version-1-tensor-scaled",
        lambda: load(weights=edited(_scale_first_tensor, "v1t.pt", version=1)),
        ValueError,
        r"v1t\.pt: checksum mismatch: .*sha256 of its tensors differs",
    ),
    Good(
        LOAD,
        "file",
        "version-1-still-reads",
        lambda: read_back(written("v1.pt", version=1)),
        lambda: saved_net()(X(), 0.1),
        0.0,
    ),
    Good(
        LOAD,
        "file",
        "version-2-round-trip",
        lambda: read_back(written("v2.pt")),
        lambda: saved_net()(X(), 0.1),
        0.0,
    ),
    Bad(
        LOAD,
        "file",
        "public-truncated",
        lambda: load("bfcnn", weights=truncated_public(folder())),
        ValueError,
        r"bfcnn_truncated\.pt could not be read: it is a truncated torch file",
    ),
    Bad(
        LOAD,
        "file",
        "public-text",
        lambda: load("dncnn", weights=text_file("dncnn.pth")),
        ValueError,
        r"dncnn\.pth could not be read: it is a text file",
    ),
    Bad(
        LOAD,
        "file",
        "public-nan-tensor",
        lambda: load("bfcnn", weights=public_with_nan()),
        ValueError,
        r"bfcnn_nan\.pt hold NaN or Inf values in 1 tensor\(s\): conv_layers\.1",
    ),
    Bad(
        LOAD,
        "file",
        "pnpfast-file-as-public",
        lambda: load("bfcnn", weights=written("ours.pt")),
        ValueError,
        r"ours\.pt is a pnpfast weight file, which names its own architecture: load it with "
        r"load\('pnpfast', weights=\.\.\.\)",
    ),
    Good(
        LOAD,
        "file",
        "public-bfcnn-round-trip",
        lambda: load("bfcnn", weights=_public_bfcnn())(X(), 0.1),
        lambda: ref(bfcnn(), X()),
        0.0,
    ),
]


def _public_bfcnn() -> Path:
    path = folder() / "bfcnn.pt"
    torch.save(bfcnn().state_dict(), path)
    return path


@params(CASES)
def test_fuzz(case):
    check(case)
