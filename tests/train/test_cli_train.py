"""``pnpfast train``: a run end to end, resuming, recipes and flags, argument errors (exit 2)."""

import json

import pytest
import torch

import pnpfast.cli
import pnpfast.denoisers as dn
from pnpfast.cli import main
from pnpfast.train.loop import ConfigError, TrainConfig

TINY = ["--widths", "4,8", "--blocks", "1", "--patch-size", "16", "--batch-size", "2"]


def _args(train_dir, out, *extra) -> list[str]:
    return ["train", "--train-dir", str(train_dir), "--out", str(out), "--no-progress", *extra]


def _config(out) -> dict:
    return json.loads((out / "config.json").read_text())


def test_train_end_to_end_then_resume(gray_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(gray_dir, out, "--val-dir", str(gray_dir), *TINY, "--steps", "4")
    args += ["--sigma", "5,30", "--val-every", "2", "--seed", "3", "--lr", "0.002"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert str(out / "model.pt") in printed and str(out / "best.pt") in printed
    assert "best validation PSNR" in printed
    for name in ("model.pt", "best.pt", "checkpoint.pt", "log.jsonl"):
        assert (out / name).is_file(), name
    config = _config(out)
    assert config["arch"] == {"arch": "drunet", "widths": [4, 8], "blocks": 1}
    assert config["sigma"] == [5 / 255, 30 / 255]
    assert config["steps"] == 4 and config["seed"] == 3 and config["lr"] == 0.002
    assert config["val_dir"] == str(gray_dir) and config["val_every"] == 2
    assert config["schedule"] == "cosine"  # TrainConfig's default without a recipe

    log = (out / "log.jsonl").read_text()
    model = (out / "model.pt").read_bytes()
    assert main(args) == 0  # the same command: resumes at the end, trains nothing
    assert "resuming from step 4" in capsys.readouterr().out
    assert (out / "log.jsonl").read_text() == log
    assert (out / "model.pt").read_bytes() == model


def test_the_run_is_prepared_once(gray_dir, tmp_path, capsys, monkeypatch):
    """The images and the checkpoint are read once per command (check and train in one pass),
    also when resuming; the summary is printed before training starts."""
    import pnpfast.train.loop as loop

    calls = []
    prepare = loop._prepare
    monkeypatch.setattr(loop, "_prepare", lambda *a: calls.append(1) or prepare(*a))
    args = _args(gray_dir, tmp_path / "run", *TINY, "--steps", "2")
    assert main(args) == 0 and len(calls) == 1
    assert main([*args[:-1], "3"]) == 2  # steps differ from the checkpoint's: refused, once
    assert len(calls) == 2 and "--out" in capsys.readouterr().err
    assert main(args) == 0 and len(calls) == 3
    assert "resuming from step 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "arch"),
    [
        (
            ["--arch", "dncnn", "--depth", "3", "--features", "4", "--no-bias"],
            {"arch": "dncnn", "depth": 3, "features": 4, "bias": False, "norm": "bias-free"},
        ),
        (
            ["--arch", "bfcnn", "--depth", "3", "--features", "4"],
            {"arch": "bfcnn", "depth": 3, "features": 4},
        ),
        (
            ["--widths", "4,8", "--no-noise-map", "--activation", "elu", "--bias"],
            {"arch": "drunet", "widths": [4, 8], "blocks": 1, "noise_map": False},
        ),
        (
            ["--arch", "gradient_step", "--widths", "4,8", "--activation", "softplus"],
            {
                "arch": "gradient_step",
                "network": {"arch": "drunet", "widths": [4, 8], "blocks": 1},
            },
        ),
    ],
    ids=["dncnn", "bfcnn", "drunet", "gradient-step"],
)
def test_architecture_flags(gray_dir, tmp_path, flags, arch):
    out = tmp_path / "run"
    steps = ["--patch-size", "16", "--batch-size", "2", "--steps", "1"]
    assert main(_args(gray_dir, out, *flags, *steps)) == 0
    if arch["arch"] == "drunet":
        arch = {**arch, "activation": "elu", "bias": True}
    if arch["arch"] == "gradient_step":
        arch["network"]["activation"] = "softplus"
    assert _config(out)["arch"] == arch
    assert (out / "model.pt").is_file()


def test_recipe_settings_are_the_defaults_and_flags_override_them(gray_dir, tmp_path):
    out = tmp_path / "run"
    flags = ["--recipe", "blind-gray", *TINY, "--steps", "2", "--lr", "0.002", "--clip", "0"]
    assert main(_args(gray_dir, out, *flags)) == 0
    config = _config(out)
    assert config["arch"] == {
        "arch": "drunet",
        "widths": [4, 8],
        "blocks": 1,
        "bias": False,
        "residual": True,
        "noise_map": False,
    }
    assert config["lr"] == 0.002 and config["clip"] is None and config["steps"] == 2
    # from the recipe
    assert config["sigma"] == [0.0, 100 / 255]
    assert config["warmup"] == 200 and config["patches_per_image"] == 64
    assert config["checkpoint_every"] == 250 and config["log_every"] == 50


def test_loss_options_merge_over_the_recipe(gray_dir, tmp_path):
    out = tmp_path / "run"
    flags = ["--recipe", "proximal-gray", "--widths", "4,8", "--steps", "1", "--batch-size", "2"]
    flags += ["--patch-size", "16", "--loss-option", "iters=2", "--loss-option", "eps=0.2"]
    assert main(_args(gray_dir, out, *flags)) == 0
    config = _config(out)
    assert config["loss"] == "spectral-penalty"
    assert config["loss_options"] == {"weight": 1e-2, "eps": 0.2, "iters": 2, "method": "lanczos"}
    assert config["arch"]["network"]["activation"] == "softplus"
    assert main(_args(gray_dir, out, "--loss-option", "iters")) == 2


def test_checkpoint_of_another_configuration_is_exit_2_then_fresh(gray_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(gray_dir, out, *TINY, "--steps", "2")
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "--out: " in err and "another configuration" in err and "--fresh" in err
    assert "lr 0.001 there, 0.01 now" in err  # the field, the old and the new value
    assert _config(out)["lr"] == 0.001  # nothing was touched
    assert main([*args, "--lr", "0.01", "--fresh"]) == 0
    assert _config(out)["lr"] == 0.01


def test_rerun_with_other_machine_and_reporting_settings_resumes(gray_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(gray_dir, out, *TINY, "--steps", "3", "--threads", "1", "--val-every", "2")
    assert main(args) == 0
    model = (out / "model.pt").read_bytes()
    capsys.readouterr()
    # threads, device, val_every, checkpoint_every do not change the batches or the updates
    more = ["--threads", "2", "--device", "cpu", "--val-every", "5", "--checkpoint-every", "7"]
    assert main([*_args(gray_dir, out, *TINY, "--steps", "3"), *more]) == 0
    assert "resuming from step 3" in capsys.readouterr().out
    assert (out / "model.pt").read_bytes() == model
    assert _config(out)["threads"] == 2 and _config(out)["val_every"] == 5


@pytest.mark.parametrize(
    ("flags", "settings"),
    [
        (["--lr", "-1"], {"lr": -1.0}),
        (["--steps", "0"], {"steps": 0}),
        (["--channels", "2"], {"channels": 2}),
        (["--sigma", "30,5"], {"sigma": (30 / 255, 5 / 255)}),
        (["--schedule", "linear"], {"schedule": "linear"}),
        (["--device", "gpu0"], {"device": "gpu0"}),
        (["--threads", "0"], {"threads": 0}),
        (["--clip", "-1"], {"clip": -1.0}),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_a_bad_value_gets_the_library_message_with_its_flag(
    gray_dir, tmp_path, capsys, flags, settings
):
    with pytest.raises(ConfigError) as info:
        TrainConfig(train_dir=str(gray_dir), out_dir=str(tmp_path / "x"), **settings)
    assert main(_args(gray_dir, tmp_path / "run", *TINY, *flags)) == 2
    err = capsys.readouterr().err
    assert err == f"pnpfast train: error: {flags[0]}: {info.value}\n"
    assert info.value.field in str(info.value)


def _bad(tmp_path, gray_dir, make_pngs) -> list[tuple[list[str], str]]:
    """(arguments, what stderr must say) for arguments that must give exit code 2."""
    empty = tmp_path / "empty"
    empty.mkdir()
    small = make_pngs("small", 2, size=(12, 12))
    out = tmp_path / "out"
    ok = ["--train-dir", str(gray_dir), "--out", str(out), *TINY]
    return [
        (["--out", str(out)], "--train-dir"),
        (["--train-dir", str(tmp_path / "missing"), "--out", str(out)], "--train-dir"),
        (["--train-dir", str(empty), "--out", str(out)], "--train-dir"),
        (["--train-dir", str(small), "--out", str(out), *TINY], "smaller than 16"),
        ([*ok, "--val-dir", str(tmp_path / "missing")], "--val-dir"),
        ([*ok, "--sigma", "abc"], "--sigma"),
        ([*ok, "--sigma", "30,5"], "--sigma"),
        ([*ok, "--sigma", "1,2,3"], "--sigma"),
        ([*ok, "--recipe", "nope"], "--recipe"),
        ([*ok, "--depth", "5"], "drunet does not take depth"),
        ([*ok, "--arch", "bfcnn"], "bfcnn does not take widths, blocks"),
        ([*ok, "--arch", "gradient_step", "--features", "4"], "drunet does not take features"),
        ([*ok, "--arch", "nope"], "arch must be one of drunet"),
        ([*ok, "--widths", "4,0"], "widths must be"),
        ([*ok[:4], "--arch", "dncnn", "--features", "0"], "features must be an int >= 1, not 0"),
        ([*ok, "--activation", "tanh"], "activation must be one of"),
        ([*ok, "--precision", "fp8"], "--precision"),
        ([*ok, "--widths", "4,x"], "--widths"),
        ([*ok, "--channels", "2"], "--channels"),
        ([*ok, "--steps", "0"], "--steps"),
        ([*ok, "--lr", "-1"], "--lr"),
        ([*ok, "--loss", "nope"], "--loss"),
        ([*ok, "--loss-option", "bogus=1"], "--loss-option"),
        ([*ok, "--device", "gpu0"], "--device"),
        ([*ok, "--init", str(tmp_path / "missing.pt")], "--init"),
        ([*ok, "--init", str(gray_dir / "img0.png")], "--init"),
    ]


def test_bad_arguments_exit_2_with_the_flag_named(gray_dir, tmp_path, make_pngs, capsys):
    for args, said in _bad(tmp_path, gray_dir, make_pngs):
        assert main(["train", "--no-progress", *args]) == 2, args
        err = capsys.readouterr().err
        assert said in err, (args, err)
    assert not (tmp_path / "out").exists()  # nothing was started


def test_diverged_training_is_exit_1(gray_dir, tmp_path, capsys, monkeypatch):
    def diverge(config, **options):
        raise FloatingPointError("the training loss is nan at step 3")

    monkeypatch.setattr(pnpfast.cli, "train", diverge)
    assert main(_args(gray_dir, tmp_path / "run", *TINY, "--steps", "4")) == 1
    assert "nan at step 3" in capsys.readouterr().err


def test_train_help(capsys):
    assert main(["train", "--help"]) == 0
    assert "--train-dir" in capsys.readouterr().out


def test_export_writes_half_precision_with_meta(gray_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--train-dir",
            str(gray_dir),
            "--out",
            str(out),
            "--widths",
            "4,8",
            "--blocks",
            "1",
            "--patch-size",
            "16",
            "--batch-size",
            "2",
            "--steps",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    target = tmp_path / "shipped.pt"
    assert main(["export", str(out / "model.pt"), str(target), "--meta", "recipe=tiny"]) == 0
    obj = torch.load(target, weights_only=True)
    assert obj["meta"]["recipe"] == "tiny" and obj["meta"]["step"] == 2
    assert all(v.dtype == torch.float16 for v in obj["state_dict"].values())
    full = dn.load("pnpfast", weights=out / "model.pt")
    half = dn.load("pnpfast", weights=target)
    x = torch.rand(1, 1, 20, 20)
    torch.testing.assert_close(half(x, 0.1), full(x, 0.1), rtol=0, atol=5e-3)
    capsys.readouterr()
    assert main(["export", str(out / "model.pt"), str(target), "--meta", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent.pt"), str(target)]) == 2
