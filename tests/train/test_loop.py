"""The training loop: what a run writes, exact resume, determinism, the loss hook, the learning
rate schedules, validation, other architectures and the recipes."""

import dataclasses
import json
import math

import pytest
import torch

from pnpfast.denoisers.architectures import ARCHITECTURES, build
from pnpfast.denoisers.weight_file import is_weights_file
from pnpfast.train import MSELoss, TrainConfig, train
from pnpfast.train.loop import _RULES, ConfigError, _Schedule, check_run, default_arch
from pnpfast.train.losses import make_loss
from pnpfast.train.recipes import RECIPES, recipe, recipe_settings

TINY = {"arch": "drunet", "widths": [4, 8], "blocks": 1}


def tiny_config(train_dir, out_dir, **overrides) -> TrainConfig:
    """A DRUNet of widths (4, 8) on 16x16 patches, 8 steps of 4 patches, logging every step."""
    settings = {
        "train_dir": str(train_dir),
        "out_dir": str(out_dir),
        "arch": dict(TINY),
        "sigma": (0.0, 50 / 255),
        "patch_size": 16,
        "patches_per_image": 2,
        "batch_size": 4,
        "steps": 8,
        "log_every": 1,
        "checkpoint_every": 4,
        "val_every": 4,
    }
    return TrainConfig(**{**settings, **overrides})


def read_log(out_dir) -> list[dict]:
    """log.jsonl without the wall-clock times."""
    lines = (out_dir / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_run_writes_its_files_and_model_pt_rebuilds_the_network(gray_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(gray_dir, out, val_dir=str(gray_dir), steps=6)
    result = train(cfg, progress=True)
    for name in ("config.json", "checkpoint.pt", "log.jsonl", "model.pt", "best.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text()) == cfg.to_json()
    assert result.step == 6 and result.out_dir == out
    assert result.weights == out / "model.pt" and result.best_weights == out / "best.pt"
    assert math.isfinite(result.best_psnr)
    assert not result.model.training

    saved = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert is_weights_file(saved)
    assert saved["config"] == {**result.model.config(), **TINY, "channels": 1}
    assert saved["meta"]["step"] == 6
    net = build(saved["config"])
    net.load_state_dict(saved["state_dict"])
    net.eval()
    x = torch.rand(2, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(net(x, 0.1), result.model(x, 0.1))
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert best["meta"]["val_psnr"] == result.best_psnr
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 6 and ckpt["config"] == cfg.to_json()


def crash(cfg: TrainConfig, at: int, monkeypatch) -> None:
    """Run ``cfg`` until its loss is called for the ``at``-th time, which raises."""
    calls = 0
    forward = MSELoss.forward

    def crashing_forward(self, model, batch):
        nonlocal calls
        calls += 1
        if calls == at:
            raise RuntimeError("simulated crash")
        return forward(self, model, batch)

    with monkeypatch.context() as patch:
        patch.setattr(MSELoss, "forward", crashing_forward)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(cfg, progress=False)


@pytest.mark.parametrize("log_every", [1, 3])
def test_resume_after_a_crash_equals_an_uninterrupted_run(
    gray_dir, tmp_path, monkeypatch, log_every
):
    # log_every 3: the crash falls inside a logging interval, whose partial sums the
    # checkpoint carries
    steps, crash_at = 8, 5
    common = {
        "val_dir": str(gray_dir),
        "steps": steps,
        "checkpoint_every": 1,
        "val_every": 3,
        "log_every": log_every,
    }
    straight = train(tiny_config(gray_dir, tmp_path / "straight", **common), progress=False)

    out = tmp_path / "crashed"
    cfg = tiny_config(gray_dir, out, **common)
    crash(cfg, crash_at, monkeypatch)
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == crash_at - 1
    assert max(r["step"] for r in read_log(out)) <= crash_at - 1

    # the thread count is a machine setting: a resumption may change it
    resumed = train(dataclasses.replace(cfg, threads=1), progress=False)
    assert resumed.step == steps
    assert_same_state(resumed.model.state_dict(), straight.model.state_dict())
    assert read_log(out) == read_log(tmp_path / "straight")
    assert resumed.best_psnr == straight.best_psnr
    for name in ("model.pt", "best.pt"):
        a = torch.load(out / name, weights_only=True)
        b = torch.load(tmp_path / "straight" / name, weights_only=True)
        assert_same_state(a["state_dict"], b["state_dict"])
        assert a["meta"]["step"] == b["meta"]["step"]


def test_same_seed_same_weights_other_seed_other_weights(gray_dir, tmp_path):
    def run(name: str, seed: int) -> dict:
        cfg = tiny_config(gray_dir, tmp_path / name, steps=3, seed=seed)
        return train(cfg, progress=False).model.state_dict()

    first, again, other = run("a", 0), run("b", 0), run("c", 1)
    assert_same_state(first, again)
    assert read_log(tmp_path / "a") == read_log(tmp_path / "b")
    assert not torch.equal(first["head.weight"], other["head.weight"])


def test_checkpoint_of_another_configuration_and_starting_over(gray_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(gray_dir, out, steps=3)
    first = train(cfg, progress=False).model.state_dict()
    changed = tiny_config(gray_dir, out, steps=3, lr=2e-3, batch_size=2)
    with pytest.raises(ValueError, match="another configuration") as info:
        train(changed, progress=False)
    message = str(info.value)
    assert info.value.field == "out_dir"
    assert "batch_size 4 there, 2 now" in message and "lr 0.001 there, 0.002 now" in message
    assert "steps" not in message
    assert json.loads((out / "config.json").read_text()) == cfg.to_json()  # untouched

    again = train(cfg, resume=False, progress=False)  # the same configuration, from scratch
    assert_same_state(again.model.state_dict(), first)
    assert [r["step"] for r in read_log(out)] == [1, 2, 3]
    result = train(changed, resume=False, progress=False)
    assert result.step == 3
    assert [r["step"] for r in read_log(out)] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text()) == changed.to_json()


def test_resuming_may_change_where_it_runs_and_how_often_it_reports(
    gray_dir, tmp_path, monkeypatch
):
    common = {"val_dir": str(gray_dir), "steps": 6, "checkpoint_every": 2, "val_every": 2}
    straight = train(tiny_config(gray_dir, tmp_path / "straight", **common), progress=False)
    cfg = tiny_config(gray_dir, tmp_path / "crashed", **common)
    crash(cfg, 4, monkeypatch)  # the checkpoint of step 2 is left
    other = {"threads": 1, "device": "cpu", "log_every": 4, "val_every": 1, "checkpoint_every": 5}
    assert check_run(dataclasses.replace(cfg, **other)) == 2
    resumed = train(dataclasses.replace(cfg, **other), progress=False)
    # the same batches and the same updates: the same weights as the uninterrupted run
    assert_same_state(resumed.model.state_dict(), straight.model.state_dict())
    assert [r["step"] for r in read_log(tmp_path / "crashed") if "val_psnr" in r] == [2, 3, 4, 5, 6]


def test_check_run_gives_the_resume_step_and_writes_nothing(gray_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(gray_dir, out, steps=3)
    assert check_run(cfg) == 0
    assert not out.exists()
    train(cfg, progress=False)
    rng = torch.get_rng_state()
    assert check_run(cfg) == 3
    assert check_run(cfg, resume=False) == 0
    assert torch.equal(torch.get_rng_state(), rng)  # the seeded network build is undone
    with pytest.raises(ConfigError) as info:
        check_run(dataclasses.replace(cfg, seed=5, sigma=(0.0, 0.1)))
    assert info.value.field == "out_dir"
    assert "seed 0 there, 5 now" in str(info.value)
    assert f"sigma [0.0, {50 / 255!r}] there, [0.0, 0.1] now" in str(info.value)
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    for check in (lambda: check_run(cfg), lambda: train(cfg, progress=False)):
        with pytest.raises(ConfigError, match="cannot be read") as info:
            check()
        assert info.value.field == "out_dir"


def test_every_field_has_a_rule():
    assert set(_RULES) | {"arch"} == {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("train_dir", None),
        ("channels", 2),
        ("channels", True),
        ("sigma", (0.2, 0.1)),
        ("sigma", (0.0, math.inf)),
        ("sigma", "0,50"),
        ("patch_size", 0),
        ("steps", 2.5),
        ("batch_size", True),
        ("lr", 0.0),
        ("lr", math.nan),
        ("lr_final", 1.5),
        ("schedule", "linear"),
        ("warmup", -1),
        ("milestones", (0.5, 1.5)),
        ("gamma", 0),
        ("weight_decay", -1e-4),
        ("clip", 0.0),
        ("precision", "fp8"),
        ("device", "gpu0"),
        ("device", "meta"),
        ("seed", -1),
        ("loss_options", "iters=2"),
        ("val_every", 0),
        ("val_sigmas", ()),
        ("val_crop", 0),
        ("threads", 0),
        ("arch", {"widths": [4]}),
        ("arch", {"arch": "unet"}),
        ("arch", {**TINY, "depth": 3}),
        ("arch", {"arch": "gradient_step"}),
        ("arch", {"arch": "gradient_step", "network": {**TINY, "features": 4}}),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_its_field(field, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{"train_dir": "a", "out_dir": "b", field: value})
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(field)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"loss": "nope"}, "loss"),
        ({"loss_options": {"bogus": 1}}, "loss_options"),
        ({"arch": {**TINY, "widths": [4, 0]}}, "arch"),
        ({"train_dir": "MISSING"}, "train_dir"),
        ({"val_dir": "MISSING"}, "val_dir"),
        ({"patch_size": 32}, "train_dir"),  # larger than the 24x24 images
        ({"init": "MISSING"}, "init"),
    ],
)
def test_what_needs_files_or_a_network_is_checked_before_anything_is_written(
    gray_dir, tmp_path, settings, field
):
    settings = {k: str(tmp_path / "missing") if v == "MISSING" else v for k, v in settings.items()}
    train_dir = settings.pop("train_dir", gray_dir)
    cfg = tiny_config(train_dir, tmp_path / "run", **settings)  # each setting is fine on its own
    for check in (lambda: check_run(cfg), lambda: train(cfg, progress=False)):
        with pytest.raises(ConfigError) as info:
            check()
        assert info.value.field == field
    assert not (tmp_path / "run").exists()


def test_train_checks_the_settings_again(gray_dir, tmp_path):
    cfg = tiny_config(gray_dir, tmp_path / "run")
    cfg.lr = -1.0  # changed after construction
    with pytest.raises(ConfigError, match="lr must be a number > 0"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_default_arch_is_accepted_and_builds(name):
    cfg = TrainConfig(train_dir="a", out_dir="b", arch=default_arch(name), channels=3)
    assert build(cfg.network_config()).channels == 3


def test_best_weights_belong_to_the_run(gray_dir, tmp_path):
    out = tmp_path / "run"
    validated = train(tiny_config(gray_dir, out, val_dir=str(gray_dir), steps=2), progress=False)
    assert validated.best_weights == out / "best.pt"
    result = train(tiny_config(gray_dir, out, steps=2), resume=False, progress=False)
    assert result.best_psnr is None
    assert result.best_weights is None
    assert not (out / "best.pt").exists()  # not the file of the run before


def test_custom_loss_is_used_and_its_metrics_are_logged(gray_dir, tmp_path):
    shapes = []

    def loss(model, batch):
        shapes.append(tuple(batch.clean.shape))
        error = model(batch.noisy, batch.sigma) - batch.clean
        l1 = error.abs().mean()
        return (error**2).mean() + l1, {"l1": l1, "constant": 2.0}

    out = tmp_path / "run"
    train(tiny_config(gray_dir, out, steps=4, log_every=2), loss=loss, progress=False)
    assert shapes == [(4, 1, 16, 16)] * 4
    records = read_log(out)
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert set(r) == {"step", "loss", "lr", "l1", "constant"}
        assert r["constant"] == 2.0
        assert 0 < r["l1"] < r["loss"]


class ScaledMSE(torch.nn.Module):
    """A loss with a parameter of its own: the MSE of ``exp(log_scale) D(y)``."""

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, model, batch):
        out = model(batch.noisy, batch.sigma) * self.log_scale.exp()
        return ((out - batch.clean) ** 2).mean(), {"scale": self.log_scale.exp().detach()}


def test_loss_module_parameters_are_trained_and_checkpointed(gray_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(gray_dir, out, steps=3)
    module = ScaledMSE()
    train(cfg, loss=module, progress=False)
    assert module.log_scale.item() != 0
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert torch.equal(ckpt["loss"]["log_scale"], module.log_scale.detach())
    assert "scale" in read_log(out)[0]

    fresh = ScaledMSE()
    train(cfg, loss=fresh, progress=False)  # complete: resuming only loads the state
    assert torch.equal(fresh.log_scale.detach(), module.log_scale.detach())


def test_nan_loss_raises_floating_point_error(gray_dir, tmp_path):
    calls = 0

    def loss(model, batch):
        nonlocal calls
        calls += 1
        value = ((model(batch.noisy, batch.sigma) - batch.clean) ** 2).mean()
        return (value * math.nan if calls == 3 else value), {}

    out = tmp_path / "run"
    # found at the next log line (step 4, every 2 steps) without a host sync per step; the
    # checkpoint of step 2 is not overwritten by the poisoned weights
    config = tiny_config(gray_dir, out, steps=6, log_every=2, checkpoint_every=2)
    with pytest.raises(FloatingPointError, match="between step 3 and step 4"):
        train(config, loss=loss, progress=False)
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def _factor(kind: str, step: int, *, steps: int, warmup: int, final: float) -> float:
    """The learning-rate factor after ``step`` updates, written out independently."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "step":  # milestones 0.5 and 0.75 of the steps, gamma 0.1
        return 0.1 ** ((step >= steps // 2) + (step >= steps * 3 // 4))
    t = (step - warmup) / (steps - warmup)
    return final + (1 - final) * (1 + math.cos(math.pi * t)) / 2


@pytest.mark.parametrize(
    ("kind", "warmup"), [("cosine", 3), ("cosine", 0), ("step", 0), ("constant", 2)]
)
def test_learning_rate_schedule(gray_dir, tmp_path, kind, warmup):
    steps, lr, final = 8, 0.01, 0.1
    cfg = tiny_config(
        gray_dir, tmp_path, steps=steps, lr=lr, lr_final=final, schedule=kind, warmup=warmup
    )
    train(cfg, progress=False)
    logged = {r["step"]: r["lr"] for r in read_log(tmp_path)}
    assert sorted(logged) == list(range(1, steps + 1))
    for step, value in logged.items():  # the rate for the next update
        want = lr * _factor(kind, step, steps=steps, warmup=warmup, final=final)
        assert value == pytest.approx(want, rel=1e-9), step


def test_schedule_factors_at_chosen_steps(tmp_path):
    def factor(step: int, **settings) -> float:
        cfg = TrainConfig(train_dir="x", out_dir=str(tmp_path), steps=1000, **settings)
        return _Schedule(cfg)(step)

    cosine = {"schedule": "cosine", "warmup": 100, "lr_final": 0.01}
    assert factor(0, **cosine) == pytest.approx(0.01)
    assert factor(49, **cosine) == pytest.approx(0.5)
    assert factor(100, **cosine) == pytest.approx(1.0)
    assert factor(550, **cosine) == pytest.approx(0.505)  # halfway: (1 + final) / 2
    assert factor(1000, **cosine) == pytest.approx(0.01)
    stepped = {"schedule": "step", "milestones": (0.3, 0.9), "gamma": 0.5}
    assert [factor(s, **stepped) for s in (0, 299, 300, 899, 900, 999)] == [
        1.0,
        1.0,
        0.5,
        0.5,
        0.25,
        0.25,
    ]
    assert factor(10, schedule="constant", warmup=20) == pytest.approx(11 / 20)
    assert factor(500, schedule="constant", warmup=20) == 1.0


def test_validation_entries_at_val_every(gray_dir, tmp_path):
    cfg = tiny_config(gray_dir, tmp_path, val_dir=str(gray_dir), steps=7, val_every=3)
    result = train(cfg, progress=False)
    validations = [r for r in read_log(tmp_path) if "val_psnr" in r]
    assert [r["step"] for r in validations] == [3, 6, 7]  # and at the last step
    for r in validations:
        assert set(r) == {"step", "val_psnr", "val_psnr_15", "val_psnr_25", "val_psnr_50"}
        per_sigma = [r["val_psnr_15"], r["val_psnr_25"], r["val_psnr_50"]]
        assert r["val_psnr"] == pytest.approx(sum(per_sigma) / 3)
        assert r["val_psnr_15"] > r["val_psnr_50"]  # less noise, better result
    best = max(validations, key=lambda r: r["val_psnr"])
    assert result.best_psnr == best["val_psnr"]
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["meta"]["step"] == best["step"]


@pytest.mark.parametrize(
    "arch",
    [
        {"arch": "bfcnn", "depth": 3, "features": 4},
        {"arch": "dncnn", "depth": 3, "features": 4, "norm": "bias-free", "bias": False},
    ],
    ids=["bfcnn", "dncnn"],
)
def test_other_architectures_train(gray_dir, tmp_path, arch):
    before = build({**arch, "channels": 1}).state_dict()
    result = train(tiny_config(gray_dir, tmp_path, arch=arch, steps=2), progress=False)
    assert result.step == 2
    assert result.model.config() == {**arch, "channels": 1}
    after = result.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    net = build(saved["config"])
    net.load_state_dict(saved["state_dict"])
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, 0.1), result.model(x, 0.1))


def test_init_starts_from_a_weight_file(gray_dir, tmp_path):
    first = train(tiny_config(gray_dir, tmp_path / "a", steps=2), progress=False)
    init = str(tmp_path / "a" / "model.pt")
    # a learning rate so small that the weights stay where they started
    cfg = tiny_config(gray_dir, tmp_path / "b", steps=1, init=init, lr=1e-12, seed=1)
    second = train(cfg, progress=False)
    for key, value in first.model.state_dict().items():
        assert torch.allclose(second.model.state_dict()[key], value, atol=1e-9), key
    other = tiny_config(gray_dir, tmp_path / "c", steps=1, init=init, arch={**TINY, "blocks": 2})
    with pytest.raises(ValueError, match="init"):
        train(other, progress=False)


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_builds_a_config_and_a_network(name):
    cfg = recipe(name, train_dir="data/train", out_dir="runs/x", steps=5)
    assert isinstance(cfg, TrainConfig)
    assert cfg.steps == 5 and cfg.train_dir == "data/train"
    net = build(cfg.network_config())
    assert net.channels == cfg.channels
    assert net.blind == name.startswith("blind")
    x = torch.rand(1, cfg.channels, 40, 40)
    with torch.no_grad():
        out = net.eval()(x, 0.1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    loss = make_loss(cfg.loss, cfg.loss_options)
    assert callable(loss)


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="recipe must be one of") as info:
        recipe("nope", train_dir="a", out_dir="b")
    assert info.value.field == "recipe"


def test_recipe_settings_are_a_copy():
    settings = recipe_settings("proximal-gray")
    settings["arch"]["network"]["widths"].append(256)
    settings["loss_options"]["iters"] = 1
    assert RECIPES["proximal-gray"]["arch"]["network"]["widths"] == [32, 64, 128]
    assert recipe_settings("proximal-gray")["loss_options"]["iters"] == 20


def test_gradient_step_denoisers_train_with_the_convergent_losses(gray_dir, tmp_path):
    """A gradient-step network with the spectral penalty (the proximal denoiser), and PnP-ReG's
    pair: each runs, writes weight files, and they load as denoisers."""
    from pnpfast.denoisers import GradientStep, load

    gs = {"arch": "gradient_step", "network": {**TINY, "activation": "softplus"}}
    cfg = tiny_config(
        gray_dir,
        tmp_path / "prox",
        arch=gs,
        steps=2,
        loss="spectral-penalty",
        loss_options={"iters": 3},
    )
    result = train(cfg, progress=False)
    assert isinstance(result.model, GradientStep)
    log = read_log(tmp_path / "prox")
    assert "spectral_norm" in log[0] and math.isfinite(log[0]["spectral_norm"])
    D = load(weights=str(tmp_path / "prox" / "model.pt"))
    assert isinstance(D, GradientStep)
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(D(x, 0.1), result.model(x, 0.1))

    G_cfg = {**TINY, "channels": 1, "noise_map": False}
    cfg = tiny_config(
        gray_dir, tmp_path / "reg", steps=2, loss="pnp-reg", loss_options={"network": G_cfg}
    )
    train(cfg, progress=False)
    G = load(weights=str(tmp_path / "reg" / "G.pt"))
    assert G.config() == build(G_cfg).config()
    assert torch.isfinite(G(x, 0.0)).all()


def test_a_torn_last_log_line_is_dropped_on_resume(gray_dir, tmp_path, monkeypatch):
    common = {"steps": 8, "checkpoint_every": 1, "val_every": 3}
    straight = tmp_path / "straight"
    train(tiny_config(gray_dir, straight, **common), progress=False)
    out = tmp_path / "crashed"
    cfg = tiny_config(gray_dir, out, **common)
    crash(cfg, 5, monkeypatch)
    log = out / "log.jsonl"
    lines = log.read_text().splitlines()
    # a write cut short by the crash: half a record, no newline
    log.write_text("".join(f"{line}\n" for line in lines) + '{"step": 5, "lo')
    with pytest.warns(RuntimeWarning, match=rf"log\.jsonl: dropping line {len(lines) + 1}, a torn"):
        train(cfg, progress=False)
    assert read_log(out) == read_log(straight)


def test_a_corrupt_log_line_before_the_last_is_an_error(gray_dir, tmp_path, monkeypatch):
    out = tmp_path / "crashed"
    cfg = tiny_config(gray_dir, out, steps=8, checkpoint_every=1)
    crash(cfg, 5, monkeypatch)
    log = out / "log.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) >= 3
    lines[1] = lines[1][: len(lines[1]) // 2]
    log.write_text("".join(f"{line}\n" for line in lines))
    with pytest.raises(ValueError, match=r"log\.jsonl: line 2 of \d+ is not a JSON object"):
        train(cfg, progress=False)
    assert log.read_text().splitlines() == lines  # left as it was, for the user to repair


def test_checkpoints_are_fsynced_before_and_after_the_rename(gray_dir, tmp_path, monkeypatch):
    import os

    import pnpfast._atomic as atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst), os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    train(tiny_config(gray_dir, tmp_path / "run", steps=4, checkpoint_every=2), progress=False)
    written = [i for i, e in enumerate(events) if e[:2] == ("replace", "checkpoint.pt")]
    assert len(written) == 2
    for i in written:
        # the file's whole content synced, then the rename, then the folder synced
        assert events[i - 1] == ("fsync", events[i][2]) and events[i][2] > 0
        assert events[i + 1][0] == "fsync"


def test_nan_output_at_validation_is_a_floating_point_error(gray_dir, tmp_path):
    """A network whose training loss is finite but whose eval-mode output is NaN (here: batch
    norm running statistics poisoned) stops at validation with its own error, not psnr's."""

    def loss(model, batch):
        with torch.no_grad():  # before the forward pass, which saves the buffers for backward
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_var.fill_(math.nan)
        value = ((model(batch.noisy, batch.sigma) - batch.clean) ** 2).mean()
        return value, {}

    arch = {"arch": "dncnn", "depth": 3, "features": 4, "norm": "batch"}
    cfg = tiny_config(gray_dir, tmp_path, arch=arch, val_dir=str(gray_dir), steps=2, val_every=2)
    with pytest.raises(FloatingPointError, match=r"validation: the network returned NaN or Inf"):
        train(cfg, loss=loss, progress=False)
