"""Fuzz table (issue 17) of the production runner: pnpfast.runner.run.RunConfig (every field of
the wrong type or value) and pnpfast.runner.run.restore (config, progress, rank, world_size,
inputs, manifest, device, a ledger written with other settings).

Good rows restore one tiny image (1x1 and 8x8, 8- and 16-bit) with the denoising task and
compare the written file with ``pnpfast.solve`` on that image alone (Identity, Gaussian
smoothing), quantised as the file is: an independent call of the solver, not the runner.
"""

from pathlib import Path

import torch
from fuzz_cases import Bad, Good, check, params, scratch_folder

import pnpfast.solvers
from pnpfast.denoisers import GaussianSmoothing
from pnpfast.io import KernelReadError, read_image_file, write_image_file
from pnpfast.operators import Identity
from pnpfast.runner.ledger import SettingsMismatchError
from pnpfast.runner.run import RunConfig, restore

RC = "pnpfast.runner.run.RunConfig"
RS = "pnpfast.runner.run.restore"


def folder() -> Path:
    return scratch_folder("runner-run")


def cfg(**kw) -> RunConfig:
    base = dict(task="denoise", noise=10.0, denoiser=GaussianSmoothing(), max_iter=2)
    base.update(kw)
    return RunConfig(**base)


def one_image(h: int = 8, w: int = 8, depth: int = 8) -> Path:
    """A folder holding one gray image a.png."""
    root = folder()
    (root / "in").mkdir()
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(h * w))
    write_image_file(root / "in" / "a.png", x, bit_depth=depth)
    return root


def run(root: Path, **kw):
    return restore(root / "in", root / "out", kw.pop("config", cfg()), **kw)


def restored(h: int, w: int, depth: int) -> torch.Tensor:
    root = one_image(h, w, depth)
    report = run(root, config=cfg(bit_depth=depth))
    assert report.done == 1, report.failed
    return read_image_file(root / "out" / "a.png").pixels


def alone(h: int, w: int, depth: int) -> torch.Tensor:
    root = one_image(h, w, depth)
    y = read_image_file(root / "in" / "a.png").pixels
    x = pnpfast.solvers.solve(y, Identity(), GaussianSmoothing(), sigma=10 / 255, max_iter=2).x
    top = 2**depth - 1
    return (x.double().clamp(0, 1) * top).round() / top


def inside(root: Path):
    return restore(root / "in", root / "in" / "out", cfg())


def corrupt_kernel():
    root = one_image()
    (root / "k.npy").write_bytes(b"not a kernel")
    return run(root, config=cfg(task="deblur", operator=f"blur:{root / 'k.npy'}"))


def empty_mask():
    root = one_image()
    write_image_file(root / "m.png", torch.zeros(1, 1, 8, 8))
    return run(root, config=cfg(task="inpainting", mask=root / "m.png"))


def mismatch():
    root = one_image()
    run(root)
    return run(root, config=cfg(noise=20.0))


CASES = [
    # RunConfig
    Bad(RC, "type", "task int", lambda: RunConfig(task=1), TypeError, "task must be a str"),
    Bad(RC, "name", "task unknown", lambda: RunConfig(task="deblurr"), ValueError,
        "task must be one of deblur, sr, inpainting, denoise"),
    Bad(RC, "type", "operator int", lambda: RunConfig("deblur", operator=3), TypeError,
        "operator must be a str"),
    Bad(RC, "name", "operator for denoise", lambda: RunConfig("denoise", operator="sr:x2"),
        ValueError, "operator applies to the tasks deblur and sr, not to 'denoise'"),
    Bad(RC, "name", "sr operator for deblur", lambda: RunConfig("deblur", operator="sr:x2"),
        ValueError, "is a sr operator; task 'deblur' takes 'blur:...'"),
    Bad(RC, "value", "blur without kernel", lambda: RunConfig("deblur", operator="blur"),
        ValueError, "operator: kernel is required"),
    Bad(RC, "name", "operator name unknown", lambda: RunConfig("sr", operator="zoom:x2"),
        ValueError, "operator: name must be one of"),
    Bad(RC, "type", "mask int", lambda: RunConfig("inpainting", mask=3), TypeError,
        "mask must be a file path"),
    Bad(RC, "value", "mask empty", lambda: RunConfig("inpainting", mask=""), ValueError,
        "mask must be a file path, not an empty string"),
    Bad(RC, "value", "mask for deblur", lambda: RunConfig("deblur", mask="m.png"), ValueError,
        "mask applies to the task inpainting only"),
    Bad(RC, "value", "noise 0", lambda: cfg(noise=0), ValueError, r"noise must be .*\(0, 255\]"),
    Bad(RC, "value", "noise 300", lambda: cfg(noise=300), ValueError, "noise must be"),
    Bad(RC, "nan-inf", "noise nan", lambda: cfg(noise=float("nan")), ValueError,
        "noise must be"),
    Bad(RC, "type", "noise str", lambda: cfg(noise="7.65"), TypeError, "noise must be"),
    Bad(RC, "name", "method unknown", lambda: cfg(method="hqz"), ValueError,
        "method must be one of"),
    Bad(RC, "type", "method int", lambda: cfg(method=1), TypeError, "method must be a str"),
    Bad(RC, "name", "params unknown", lambda: cfg(params={"lamb": 1.0}), ValueError,
        "params: method 'hqs' has no parameter 'lamb'"),
    Bad(RC, "type", "params list", lambda: cfg(params=[1]), TypeError,
        "params must be a mapping"),
    Bad(RC, "nan-inf", "params nan", lambda: cfg(params={"lam": float("inf")}), ValueError,
        "params: lam must be finite"),
    Bad(RC, "value", "params negative", lambda: cfg(params={"lam": -1.0}), ValueError,
        "params: lam must be > 0, got -1.0"),
    Bad(RC, "type", "params text", lambda: cfg(params={"lam": "big"}), TypeError,
        "params: lam must be a float"),
    Bad(RC, "value", "sampler beta > 1",
        lambda: cfg(method="implicit-prior", params={"beta": 2.0}), ValueError,
        "params: beta must be <= 1.0, got 2.0"),
    Bad(RC, "value", "max_iter 0", lambda: cfg(max_iter=0), ValueError, "max_iter must be"),
    Bad(RC, "type", "max_iter float", lambda: cfg(max_iter=2.5), TypeError, "max_iter must be"),
    Bad(RC, "type", "denoiser int", lambda: cfg(denoiser=3), TypeError,
        "denoiser must be None, a name"),
    Bad(RC, "type", "weights int", lambda: cfg(weights=3), TypeError, "weights must be a file"),
    Bad(RC, "name", "device unknown", lambda: cfg(device="gpu0"), ValueError,
        "device must be 'cpu', 'cuda'"),
    Bad(RC, "type", "device int", lambda: cfg(device=0), TypeError, "device must be a str"),
    Bad(RC, "value", "batch_size 0", lambda: cfg(batch_size=0), ValueError,
        "batch_size must be an int >= 1"),
    Bad(RC, "type", "batch_size bool", lambda: cfg(batch_size=True), TypeError,
        "batch_size must be"),
    Bad(RC, "value", "batch_size text", lambda: cfg(batch_size="max"), ValueError,
        "batch_size must be an int >= 1 or 'auto', not 'max'"),
    Bad(RC, "type", "precision int", lambda: cfg(precision=16), TypeError,
        "precision must be a str, one of fp32, bf16, fp16, not int"),
    Bad(RC, "value", "precision unknown", lambda: cfg(precision="bfloat16"), ValueError,
        "precision must be one of fp32, bf16, fp16, not 'bfloat16'"),
    Bad(RC, "value", "precision for gs-pnp", lambda: cfg(method="gs-pnp", precision="bf16"),
        ValueError, "precision 'bf16' does not apply to method 'gs-pnp'"),
    Bad(RC, "type", "channels_last str", lambda: cfg(channels_last="yes"), TypeError,
        "channels_last must be"),
    Bad(RC, "value", "cuda_graphs on cpu", lambda: cfg(cuda_graphs=True), ValueError,
        "cuda_graphs needs a CUDA device, not cpu"),
    Bad(RC, "value", "tile 0", lambda: cfg(tile=0), ValueError, "tile must be an int >= 1"),
    Bad(RC, "value", "overlap without tile", lambda: cfg(overlap=4), ValueError,
        "overlap applies with tile only"),
    Bad(RC, "value", "overlap = tile", lambda: cfg(tile=8, overlap=8), ValueError,
        r"overlap must be an int in \[0, 7\]"),
    Bad(RC, "name", "extension gif", lambda: cfg(extension="gif"), ValueError,
        "extension must be one of"),
    Bad(RC, "type", "extension int", lambda: cfg(extension=3), TypeError,
        "extension must be a str"),
    Bad(RC, "value", "bit_depth 12", lambda: cfg(bit_depth=12), ValueError,
        r"bit_depth must be 8, 16 or None"),
    Bad(RC, "type", "bit_depth str", lambda: cfg(bit_depth="8"), TypeError, "bit_depth must be"),
    Bad(RC, "type", "overwrite str", lambda: cfg(overwrite="yes"), TypeError,
        "overwrite must be True or False"),
    # restore
    Bad(RS, "type", "config dict", lambda: restore("a.png", "out", {"task": "denoise"}),
        TypeError, "config must be a pnpfast.runner.run.RunConfig"),
    Bad(RS, "type", "progress int", lambda: run(one_image(), progress=3), TypeError,
        "progress must be callable"),
    Bad(RS, "value", "rank = world_size", lambda: run(one_image(), rank=2, world_size=2),
        ValueError, r"rank must be an int in \[0, 1\] \(world_size is 2\)"),
    Bad(RS, "value", "world_size 0", lambda: run(one_image(), world_size=0), ValueError,
        "world_size must be an int >= 1"),
    Bad(RS, "type", "rank float", lambda: run(one_image(), rank=0.0), TypeError,
        "rank must be"),
    Bad(RS, "type", "inputs int", lambda: restore(3, folder() / "out", cfg()), TypeError,
        "inputs must be a path or a list of paths"),
    Bad(RS, "file", "input missing", lambda: restore(folder() / "none.png", folder(), cfg()),
        FileNotFoundError, "none.png"),
    Bad(RS, "file", "manifest missing",
        lambda: run(one_image(), manifest=folder() / "jobs.csv"), FileNotFoundError,
        "jobs.csv"),
    Bad(RS, "value", "output inside the input",
        lambda: inside(one_image()), ValueError, "output_dir .* is inside the input folder"),
    Bad(RS, "value", "device cuda:99", lambda: run(one_image(), config=cfg(device="cuda:99")),
        ValueError, "device cuda:99 was asked for but"),
    Bad(RS, "value", "ledger of other settings", mismatch, SettingsMismatchError,
        "noise: 10.0 before, 20.0 now"),
    Bad(RS, "file", "operator kernel missing",
        lambda: run(one_image(), config=cfg(task="deblur", operator="blur:nosuch.npy")),
        FileNotFoundError, "operator: no such file .*nosuch.npy"),
    Bad(RS, "file", "operator kernel corrupt", lambda: corrupt_kernel(), KernelReadError,
        "cannot read kernel .*k.npy"),
    Bad(RS, "file", "mask missing",
        lambda: run(one_image(), config=cfg(task="inpainting", mask=folder() / "m.png")),
        FileNotFoundError, "mask: no such file .*m.png"),
    Bad(RS, "value", "mask measures nothing", lambda: empty_mask(), ValueError,
        "the mask .*m.png measures no pixel"),
    Bad(RS, "file", "weights missing",
        lambda: run(one_image(), config=cfg(denoiser="dncnn", weights=folder() / "w.pth")),
        FileNotFoundError, "weights: no such file .*w.pth"),
    Bad(RS, "name", "denoiser unknown", lambda: run(one_image(), config=cfg(denoiser="nosuch")),
        ValueError, "denoiser: cannot load it: name must be one of .* not 'nosuch'"),
    Good(RS, "size", "1x1 gray", lambda: restored(1, 1, 8), lambda: alone(1, 1, 8), 1e-6),
    Good(RS, "size", "8x8 gray 16-bit", lambda: restored(8, 8, 16), lambda: alone(8, 8, 16),
         1e-6),
]  # fmt: skip


@params(CASES)
def test_fuzz(case):
    check(case)
