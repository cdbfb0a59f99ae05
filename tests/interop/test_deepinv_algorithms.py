"""deepinv's own algorithms with the original physics and with ``accelerate(physics)`` (issue 20).

deepinv's ``DPIR`` and its ``HQS``, ``PGD``, ``DRS`` and ``ADMM`` classes run on two real images
(``pnpfast.data``: the astronaut and the cameraman, 64x64 centre crops, the cameraman repeated to
three channels) degraded by a realistic motion blur (``BlurFFT``, ``pnpfast.data.motion_kernel()``),
a circular x2 bicubic ``Downsampling``, a random-pixel ``Inpainting`` and ``Denoising``, each once
with deepinv's physics and once with the drop-in from ``pnpfast.interop.deepinv.accelerate``, the
same y, the same parameters. A forward hook on the algorithm's iterator records every iterate
``X["est"][0]``; per image, ||x_k^orig - x_k^fast|| / ||x_k^orig|| must be <= 1e-5 at every k in
float32 with the shipped conditional denoiser (wrapped by ``PnpfastDenoiser``), and the final
PSNRs against the ground truth equal to 0.01 dB.

Why a real denoiser for the float32 criterion: the x-update of DPIR divides by |K^|^2 + 1/gamma
with gamma up to ~180, so FFT rounding at frequencies where the motion kernel's spectrum nearly
vanishes is amplified ~1e4 times; with an identity denoiser that amplified rounding is the
iterate (float32 differences of 1e-5 to 3e-5 between two correct FFT implementations), while a
denoiser removes those frequencies. The identity-denoiser runs are therefore compared in float64,
at 1e-11: deepinv's DPIR passes float32 stepsizes even for float64 images and takes 1 / gamma in
float32; the accelerated path does the same (measured ~3e-14 from deepinv), where taking
1 / gamma in the images' float64 would differ by ~1e-8 (``test_a_wrong_gamma_convention_is_caught``
checks that such a path fails).

Also: a per-image stepsize given as ``[gamma_B111]`` in ``params_algo`` (deepinv reads a
longer-than-one iterable as a per-iteration list, so a per-image value is a one-element list
holding a [B, 1, 1, 1] tensor) against each image run alone with its scalar stepsize; y changing
between calls on the same accelerated physics (a new y, the same y mutated in place); and a
deliberately wrong gamma convention that the comparison must catch.

deepinv is an extra (``pip install pnpfast[deepinv]``; CI installs it with ``make deepinv``):
where it cannot be imported every test here skips, saying why (``pnpfast_test_utils.
deepinv_or_skip``, which loads it beside a torchvision stub where torchvision cannot load; the
algorithms and physics used here never call torchvision).
"""

import math

import pytest
import torch

import pnpfast

F32, F64 = torch.float32, torch.float64
SIZE = 64
NOISE = 0.03  # measurement noise, the DPIR sigma
RTOL = {F32: 1e-5, F64: 1e-11}  # per-iterate relative difference (module docstring)
PSNR_DB = 0.01
ITERS = 5  # HQS/PGD/DRS/ADMM iterations (DPIR runs its own 8)
PHYSICS = ("blur", "sr2", "inpainting", "denoising")
ALGORITHMS = ("dpir", "hqs", "pgd", "drs", "admm")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small images on one thread: on the shared 2-core machine thread barriers cost more than
    the work (the file takes ~1.5x longer with two threads under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def interop(fast):
    """pnpfast.interop.deepinv (conftest's ``fast``; ``fast`` names the accelerated physics here)."""
    return fast


@pytest.fixture(scope="module")
def shipped(interop):
    """The shipped conditional denoiser as a deepinv Denoiser."""
    return interop.PnpfastDenoiser(pnpfast.denoisers.load())


@pytest.fixture(scope="module")
def identity(dinv):
    class Identity(dinv.models.Denoiser):
        def forward(self, x, sigma, *args, **kwargs):
            return x

    return Identity()


def images(dtype: torch.dtype) -> torch.Tensor:
    """[2, 3, 64, 64]: the astronaut and the cameraman (gray repeated to three channels)."""
    gray = pnpfast.data.camera(SIZE).expand(-1, 3, -1, -1)
    return torch.cat([pnpfast.data.astronaut(SIZE), gray]).to(dtype)


def make_physics(dinv, kind: str, dtype: torch.dtype):
    """deepinv's physics of one problem, its buffers in ``dtype``."""
    img = (3, SIZE, SIZE)
    if kind == "blur":
        k = pnpfast.data.motion_kernel().to(dtype)
        return dinv.physics.BlurFFT(img_size=img, filter=k[None, None])
    if kind == "sr2":
        k = pnpfast.operators.SuperResolution.bicubic(2).kernel[0].to(dtype)
        return dinv.physics.Downsampling(
            img_size=img, filter=k[None, None], factor=2, padding="circular"
        )
    if kind == "inpainting":
        g = torch.Generator().manual_seed(7)
        keep = (torch.rand(1, 1, SIZE, SIZE, generator=g) < 0.6).expand(1, *img)
        return dinv.physics.Inpainting(img_size=img, mask=keep.to(dtype))
    if kind == "denoising":
        # its 0-d mask buffer is float32; .to() gives float64 images a float64 physics
        return dinv.physics.Denoising(dinv.physics.GaussianNoise(NOISE)).to(dtype)
    raise ValueError(kind)


def measure(physics, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """y = A x + NOISE n, n seeded standard normal (noise on every pixel of y, also where an
    inpainting mask is zero: the data step must use A^T y, not y)."""
    with torch.no_grad():
        ax = physics.A(x)
    g = torch.Generator().manual_seed(seed)
    return ax + NOISE * torch.randn(ax.shape, generator=g, dtype=ax.dtype)


def make_model(dinv, name: str, denoiser, stepsize=1.0, sigma: float = 0.05):
    """deepinv's algorithm ``name`` with a PnP prior on ``denoiser``, fixed iterations."""
    if name == "dpir":
        return dinv.optim.DPIR(sigma=NOISE, denoiser=denoiser)
    cls = {"hqs": "HQS", "pgd": "PGD", "drs": "DRS", "admm": "ADMM"}[name]
    return getattr(dinv.optim, cls)(
        data_fidelity=dinv.optim.data_fidelity.L2(),
        prior=dinv.optim.prior.PnP(denoiser=denoiser),
        stepsize=stepsize,
        g_param=sigma,
        max_iter=ITERS,
        early_stop=False,
    )


def run(model, y: torch.Tensor, physics) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(output, every iterate X["est"][0]) of ``model(y, physics)``."""
    iterates = []
    hook = model.fixed_point.iterator.register_forward_hook(
        lambda module, args, out: iterates.append(out["est"][0].clone())
    )
    try:
        with torch.no_grad():
            out = model(y, physics)
    finally:
        hook.remove()
    return out, iterates


def relative_differences(ref: list[torch.Tensor], new: list[torch.Tensor]) -> list[float]:
    """max over images of ||new_b - ref_b|| / ||ref_b||, per iterate."""
    assert len(ref) == len(new), f"{len(ref)} iterates against {len(new)}"
    out = []
    for a, b in zip(ref, new, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
        num = (b - a).flatten(1).norm(dim=1)
        den = a.flatten(1).norm(dim=1)
        out.append((num / den).max().item())
    return out


def assert_same_iterates(ref, new, rtol: float, what: str) -> None:
    errs = relative_differences(ref, new)
    assert all(math.isfinite(e) and e <= rtol for e in errs), (
        f"{what}: per-iterate relative differences {[f'{e:.1e}' for e in errs]} (rtol {rtol})"
    )


def count_calls(monkeypatch, cls: type, name: str) -> list:
    """A list that grows by one at every call of ``cls.<name>`` (deepinv's method, also when
    an accelerated subclass falls back to it through super())."""
    calls = []
    original = getattr(cls, name)

    def counted(self, *args, **kwargs):
        calls.append(name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def compare(monkeypatch, dinv, interop, kind, algorithm, denoiser, dtype, **model_kw):
    """Run ``algorithm`` on ``kind`` with deepinv's physics and the accelerated one: (iterates
    of each, outputs of each, ground truth). The accelerated run must take pnpfast's path:
    deepinv's own prox_l2 (and for PGD on the blur, its A_adjoint_A) is never called by it."""
    x = images(dtype)
    physics = make_physics(dinv, kind, dtype)
    fast = interop.accelerate(physics)
    assert type(fast) is not type(physics) and isinstance(fast, type(physics))
    y = measure(physics, x)
    method = "A_adjoint_A" if algorithm == "pgd" else "prox_l2"
    calls = count_calls(monkeypatch, type(physics), method)
    out_ref, it_ref = run(make_model(dinv, algorithm, denoiser, **model_kw), y, physics)
    assert calls, f"deepinv's {method} was not called: the check below would be empty"
    calls.clear()
    out_new, it_new = run(make_model(dinv, algorithm, denoiser, **model_kw), y, fast)
    if method == "prox_l2" or kind == "blur":
        assert not calls, f"the accelerated {kind} fell back to deepinv's {method} {len(calls)}x"
    expected = 8 if algorithm == "dpir" else ITERS
    assert len(it_ref) == expected
    return it_ref, it_new, out_ref, out_new, x


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", PHYSICS)
def test_same_iterates_and_psnr_float32_shipped_denoiser(
    monkeypatch, dinv, interop, shipped, kind, algorithm
):
    it_ref, it_new, out_ref, out_new, x = compare(
        monkeypatch, dinv, interop, kind, algorithm, shipped, F32
    )
    assert_same_iterates(it_ref, it_new, RTOL[F32], f"{algorithm} on {kind}")
    psnr_ref = pnpfast.metrics.psnr(out_ref, x)
    psnr_new = pnpfast.metrics.psnr(out_new, x)
    assert (psnr_new - psnr_ref).abs().max().item() <= PSNR_DB, (psnr_ref, psnr_new)
    # the algorithm restored something: a check that the comparison is not of two failures
    assert (psnr_ref > pnpfast.metrics.psnr(measure_back(dinv, kind, x), x)).all()


def measure_back(dinv, kind, x):
    """A^T y of the problem: the baseline every restoration must beat."""
    physics = make_physics(dinv, kind, x.dtype)
    with torch.no_grad():
        return physics.A_adjoint(measure(physics, x))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", PHYSICS)
def test_same_iterates_float64_identity_denoiser(
    monkeypatch, dinv, interop, identity, kind, algorithm
):
    it_ref, it_new, *_ = compare(monkeypatch, dinv, interop, kind, algorithm, identity, F64)
    assert_same_iterates(it_ref, it_new, RTOL[F64], f"{algorithm} on {kind}, float64")


@pytest.mark.parametrize("kind", ("blur", "sr2", "inpainting"))
def test_per_image_stepsize(dinv, interop, shipped, kind):
    """HQS with one stepsize per image, [B, 1, 1, 1] in a one-element list: the accelerated
    run equals deepinv's, and each image equals that image run alone with its scalar stepsize
    (an independent oracle of the per-image semantics)."""
    x = images(F32)
    physics = make_physics(dinv, kind, F32)
    fast = interop.accelerate(physics)
    y = measure(physics, x)
    gammas = (0.3, 3.0)
    g4 = torch.tensor(gammas).view(-1, 1, 1, 1)
    out_ref, it_ref = run(make_model(dinv, "hqs", shipped, stepsize=[g4]), y, physics)
    _, it_new = run(make_model(dinv, "hqs", shipped, stepsize=[g4]), y, fast)
    assert_same_iterates(it_ref, it_new, RTOL[F32], f"per-image stepsize on {kind}")
    for b, g in enumerate(gammas):
        alone, _ = run(make_model(dinv, "hqs", shipped, stepsize=g), y[b : b + 1], fast)
        assert_same_iterates([out_ref[b : b + 1]], [alone], RTOL[F32], f"image {b} alone")


@pytest.mark.parametrize("iteration", ("HQS", "PGD"))
def test_optim_builder(dinv, interop, shipped, iteration):
    """deepinv's optim_builder (the generic entry point) with the accelerated blur: the same
    iterates as with deepinv's physics, through its L2 data fidelity."""
    x = images(F32)
    physics = make_physics(dinv, "blur", F32)
    y = measure(physics, x)

    def model():
        return dinv.optim.optim_builder(
            iteration=iteration,
            max_iter=ITERS,
            params_algo={"stepsize": 0.9, "g_param": 0.05, "lambda": 1.0},
            data_fidelity=dinv.optim.data_fidelity.L2(),
            prior=dinv.optim.prior.PnP(denoiser=shipped),
            early_stop=False,
        )

    out_ref, it_ref = run(model(), y, physics)
    out_new, it_new = run(model(), y, interop.accelerate(physics))
    assert len(it_ref) == ITERS
    assert_same_iterates(it_ref, it_new, RTOL[F32], f"optim_builder {iteration}")
    gap = pnpfast.metrics.psnr(out_new, x) - pnpfast.metrics.psnr(out_ref, x)
    assert (gap.abs() < PSNR_DB).all(), gap


def test_y_changing_between_calls(dinv, interop, shipped):
    """The same accelerated physics reused: a new y, then that y mutated in place, each run
    equal to deepinv's on the current y (a stale cache of A^T y fails, as a write through
    ``.data`` shows before ``clear_cache()``)."""
    x = images(F32)
    physics = make_physics(dinv, "blur", F32)
    fast = interop.accelerate(physics)
    y1 = measure(physics, x, seed=1)
    y2 = measure(physics, x.flip(-1), seed=2)
    model = make_model(dinv, "dpir", shipped)
    for y in (y1, y2):
        assert_same_iterates(run(model, y, physics)[1], run(model, y, fast)[1], RTOL[F32], "new y")
    with torch.no_grad():
        y2.mul_(0.5).add_(0.25)
    assert_same_iterates(
        run(model, y2, physics)[1], run(model, y2, fast)[1], RTOL[F32], "y mutated in place"
    )
    # a write that torch does not count (through .data) is not seen until clear_cache(), as
    # pnpfast.interop.deepinv documents: the comparison catches the stale A^T y
    y2.data.mul_(0.5)
    _, it_ref = run(model, y2, physics)
    stale = relative_differences(it_ref, run(model, y2, fast)[1])
    assert max(stale) > 10 * RTOL[F32], stale
    fast.clear_cache()
    assert_same_iterates(it_ref, run(model, y2, fast)[1], RTOL[F32], "after clear_cache()")


def test_a_wrong_gamma_convention_is_caught(dinv, interop, shipped):
    """The comparison has teeth: a physics whose prox_l2 takes gamma 0.1% off (or as
    1 / gamma, the alpha convention of DPIR's own code) differs well beyond the tolerance."""
    x = images(F32)
    physics = make_physics(dinv, "blur", F32)
    fast = interop.accelerate(physics)
    y = measure(physics, x)
    model = make_model(dinv, "dpir", shipped)
    _, it_ref = run(model, y, physics)
    assert_same_iterates(it_ref, run(model, y, fast)[1], RTOL[F32], "accelerated")
    for wrong in (lambda g: g * 1.001, lambda g: 1 / g):

        class Wrong(type(fast)):
            change = staticmethod(wrong)

            def prox_l2(self, z, y, gamma, **kwargs):
                return super().prox_l2(z, y, self.change(gamma), **kwargs)

        bad = interop.accelerate(physics)
        bad.__class__ = Wrong
        errs = relative_differences(it_ref, run(model, y, bad)[1])
        assert max(errs) > 10 * RTOL[F32], errs


def test_gamma_reciprocal_in_float32_is_checked(dinv, interop, identity):
    """deepinv's DPIR gives float32 stepsizes to float64 images and takes 1 / gamma in float32;
    a path that took it in float64 (gamma cast first) differs by ~1e-8 and fails the float64
    tolerance, while the accelerated path passes it (the float64 tests above)."""
    x = images(F64)
    physics = make_physics(dinv, "blur", F64)
    y = measure(physics, x)
    model = make_model(dinv, "dpir", identity)
    _, it_ref = run(model, y, physics)

    class Float64Gamma(type(interop.accelerate(physics))):
        def prox_l2(self, z, y, gamma, **kwargs):
            return super().prox_l2(z, y, gamma.to(F64), **kwargs)

    bad = interop.accelerate(physics)
    bad.__class__ = Float64Gamma
    errs = relative_differences(it_ref, run(model, y, bad)[1])
    assert max(errs) > 10 * RTOL[F64], errs
