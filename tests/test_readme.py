"""The README's set-up commands and its first Python example, executed as written."""

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)


def test_readme_starts_with_the_two_setup_commands():
    first = re.search(r"^```(\w+)\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)
    assert first and first.group(1) == "bash", "the README must open with the set-up commands"
    lines = first.group(2).strip().splitlines()
    assert len(lines) == 2, lines
    install_demo, install_test = lines
    assert install_demo.startswith("pip install -c constraints.txt ")
    assert install_demo.endswith("&& pnpfast demo")
    assert install_test.startswith('pip install -c constraints.txt -e ".[test]"')
    assert install_test.endswith("&& make test")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / (a.double() - b.double()).pow(2).mean()))


def test_use_example_runs_and_restores(tmp_path, monkeypatch, capsys):
    code = _blocks("python")[0]
    assert "pnpfast.denoisers.load()" in code
    monkeypatch.chdir(tmp_path)  # nothing it writes lands in the checkout
    scope: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md (Use)", "exec"), scope)

    x, y, res = scope["x"], scope["y"], scope["res"]
    assert x.dim() == 4 and res.x.shape == x.shape == y.shape
    assert bool(torch.isfinite(res.x).all())
    before, after = _psnr(y, x), _psnr(res.x, x)
    assert after > before + 4, f"restoration {before:.2f} -> {after:.2f} dB"
    # the example prints the PSNR of y and of the last iterate, as computed here
    printed = re.findall(r"[\d.]+", capsys.readouterr().out)
    assert abs(float(printed[0]) - before) < 0.01 and abs(float(printed[1]) - after) < 0.05


# -- "Use pnpfast from existing code": each example run as written, against the original code --


def _section_block(heading: str) -> str:
    """The first python block under the README's ``### heading``."""
    section = README.split(f"\n### {heading}\n", 1)
    assert len(section) == 2, f"the README has no section {heading!r}"
    blocks = re.findall(r"^```python\n(.*?)^```$", section[1], flags=re.MULTILINE | re.DOTALL)
    assert blocks, f"no python block under {heading!r}"
    return blocks[0]


def _run_block(heading: str, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "readme_example"}
    exec(compile(_section_block(heading), f"README.md ({heading})", "exec"), scope)
    return scope


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_deepinv_example_gives_deepinv_dpir_result(tmp_path, monkeypatch):
    """The accelerated physics in deepinv's own DPIR: the same result as the original physics."""
    from pnpfast_test_utils import deepinv_or_skip

    deepinv = deepinv_or_skip()
    scope = _run_block("deepinv: swap the physics", tmp_path, monkeypatch)
    x, y, x_hat = scope["x"], scope["y"], scope["x_hat"]
    assert type(scope["fast"]).__name__ == "FastBlurFFT"
    assert isinstance(scope["fast"], deepinv.physics.BlurFFT)
    original = scope["model"](y, scope["physics"])
    assert _rel(x_hat, original) < 1e-5
    assert _psnr(x_hat, x) > _psnr(y, x) + 5


def test_dpir_example_equals_pnpfast_hqs(tmp_path, monkeypatch):
    """DPIR's loop with functional.data_solution is pnpfast.solve's hqs (DPIR's schedule)."""
    import pnpfast

    scope = _run_block("DPIR / KAIR: swap the data step", tmp_path, monkeypatch)
    y, x, x_true, noise, D = (scope[n] for n in ("y", "x", "x_true", "noise", "D"))
    A = pnpfast.operators.Blur(scope["k"][0, 0])
    res = pnpfast.solve(y, A, D, "hqs", sigma=noise, x0=y)
    assert _rel(x, res.x) < 1e-5
    gains = [_psnr(x[i], x_true[i]) - _psnr(y[i], x_true[i]) for i in range(2)]
    assert min(gains) > 5, gains


def test_gspnp_example_equals_pnpfast_gs_pnp(tmp_path, monkeypatch):
    """GS-PnP's loop with functional.prox_solution_L2 is pnpfast.solve's gs-pnp when no step
    backtracks (the example's 8 iterations do not)."""
    import pnpfast

    scope = _run_block("GS-PnP / Prox-PnP: swap the prox", tmp_path, monkeypatch)
    y, x_hat, x_true = scope["y"], scope["x_hat"], scope["x_true"]
    res = pnpfast.solve(
        y,
        pnpfast.operators.Blur(scope["k"]),
        scope["D"],
        "gs-pnp",
        sigma=scope["sigma"],
        lam=scope["lamb"],
        sigma_d=scope["sigma_d"],
        tau=scope["tau"],
        max_iter=scope["iters"],
        tol=0,
        x0=y,
    )
    assert _rel(x_hat, res.x) < 1e-5
    assert _psnr(x_hat, x_true) > _psnr(y, x_true) + 5


def test_sampler_example_equals_pnpfast_implicit_prior(tmp_path, monkeypatch):
    """functional.constrained_sample is solve(method="implicit-prior") (same seed) followed by
    the final denoising step of Kadkhodaie & Simoncelli's code."""
    import pnpfast

    scope = _run_block("Kadkhodaie & Simoncelli's sampler: swap the loop", tmp_path, monkeypatch)
    x_true, mask, M_T, model, x_hat = (
        scope[n] for n in ("x_true", "mask", "M_T", "model", "x_hat")
    )
    res = pnpfast.solve(
        M_T(x_true),
        pnpfast.operators.Inpainting(mask.bool()),
        scope["D"],
        "implicit-prior",
        sigma_L=0.05,
        h0=0.3,
        seed=0,
    )
    with torch.no_grad():
        expected = res.x - model(res.x)
    assert _rel(x_hat, expected) < 1e-5
    for i in range(2):  # well above the 30% of pixels it was given, zeros elsewhere
        assert _psnr(x_hat[i], x_true[i]) > _psnr(mask[i] * x_true[i], x_true[i]) + 5


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_restore_commands_run_as_written(tmp_path, monkeypatch, capsys):
    import json
    import shlex

    import numpy as np

    from pnpfast.cli import _parser, main
    from pnpfast.io import write_image_file

    (block,) = re.findall(
        r"^```bash\n(.*?)^```$", _section("Production runs"), flags=re.MULTILINE | re.DOTALL
    )
    lines = block.strip().splitlines()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    names = ["a.png", "b.png", "sub/c.png"]
    for name in names:
        write_image_file(tmp_path / "photos" / name, torch.rand(1, 3, 32, 32, generator=g))
    np.save(tmp_path / "k.npy", np.full((3, 3), 1 / 9, dtype=np.float32))
    rows = [f"photos/{n},k.npy,{5 + i}" for i, n in enumerate(names)]
    (tmp_path / "jobs.csv").write_text("path,kernel,noise\n" + "\n".join(rows) + "\n")

    def report(folder: str) -> dict:
        return json.loads((tmp_path / folder / "restore-report.json").read_text())

    first, again, manifest, torchrun = lines
    assert first == again  # "the same command again"
    assert main(shlex.split(first)[1:]) == 0
    assert (report("restored")["done"], report("restored")["skipped"]) == (3, 0)
    assert main(shlex.split(again)[1:]) == 0
    assert (report("restored")["done"], report("restored")["skipped"]) == (0, 3)
    assert main(shlex.split(manifest)[1:]) == 0
    assert report("restored-jobs")["done"] == 3 and set(report("restored-jobs")["auto_batch"])
    for name in names:
        assert (tmp_path / "restored" / name).is_file()
    # the torchrun line: its pnpfast arguments parse (CUDA is not here to run them)
    words = shlex.split(torchrun)
    assert words[:2] == ["torchrun", "--nproc_per_node=8"] and words[2:4] == ["-m", "pnpfast"]
    args = _parser().parse_args(words[4:])
    assert (args.command, args.device, args.precision) == ("restore", "cuda", "bf16")
