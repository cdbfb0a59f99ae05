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
