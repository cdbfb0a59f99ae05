"""The training loop: ``TrainConfig``, ``check_run`` and ``train``.

    from pnpfast.train import TrainConfig, train
    cfg = TrainConfig(train_dir="data/train", val_dir="data/val", out_dir="runs/gray",
                      channels=1, sigma=(0, 50 / 255), steps=20000)
    result = train(cfg)            # resumes from runs/gray/checkpoint.pt when it exists

Every check of a setting lives here: ``TrainConfig`` checks each field on construction,
``check_run`` what needs the files and the machine; both raise ``ConfigError`` (a ValueError
whose ``field`` names the setting), and ``train`` runs the same checks before it writes
anything. ``pnpfast train`` only turns its flags into a ``TrainConfig`` and prints these errors.

What a run writes in ``out_dir`` (every file replaced atomically, so a crash loses at most the
steps since the last checkpoint):

* ``config.json``: the configuration;
* ``checkpoint.pt``: model, optimizer, schedule, gradient scaler, loss-module state, the RNG
  states (torch CPU and CUDA, the patch sampler's generator, epoch order and position), the step
  and the best validation PSNR; a run restarted with the same configuration continues exactly
  where it stopped (same batches, same weights as an uninterrupted run). Only the
  ``RESUMABLE_FIELDS`` may differ on restart (out_dir, device, threads and how often it
  validates, checkpoints and logs); another difference is refused, naming the field;
* ``log.jsonl``: one JSON object per line: ``{"step", "loss", "lr", "seconds", ...}`` every
  ``log_every`` steps and ``{"step", "val_psnr", "val_psnr_<sigma255>", ...}`` at validation;
  on resume a torn last line (a write cut short) is dropped with a RuntimeWarning, and any
  other line that is not a JSON object is a ValueError naming the file and line;
* ``model.pt`` (the last weights) and ``best.pt`` (the weights with the best validation PSNR) in
  the format ``pnpfast.denoisers.load(weights=...)`` reads;
* ``<name>.pt`` for every network a loss trains beside the model (its ``networks()``, e.g.
  PnP-ReG's ``G.pt``), written with ``model.pt``.

Optimiser: Adam (optionally with weight decay as AdamW); learning rate schedules ``"cosine"``
(linear warm-up, then cosine decay to ``lr * lr_final``), ``"step"`` (times ``gamma`` at each
fraction of ``steps`` in ``milestones``) and ``"constant"``; gradient clipping by global norm;
mixed precision by autocast on a GPU (bfloat16, or float16 with a gradient scaler), float32 on
the CPU.
"""

import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pnpfast._atomic import atomic_open
from pnpfast.denoisers.architectures import ARCHITECTURES, build
from pnpfast.denoisers.weight_file import read_weights, save_weights
from pnpfast.metrics import psnr
from pnpfast.train.data import (
    MAX_BATCH_SIZE,
    MAX_PATCHES_PER_IMAGE,
    ImageFolder,
    NoiseModel,
    PatchSampler,
    noisy_copies,
)
from pnpfast.train.losses import LOSSES, LossFn, make_loss

__all__ = [
    "RESUMABLE_FIELDS",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "check_run",
    "default_arch",
    "train",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("cosine", "step", "constant")
# the settings a resumed run may change: where it runs and how often it reports; none of them
# changes the batches or the updates (only the float rounding, through the device and threads)
RESUMABLE_FIELDS = frozenset(
    {"out_dir", "device", "threads", "val_every", "checkpoint_every", "log_every"}
)


class ConfigError(ValueError):
    """A training setting that cannot work. ``field`` names the ``TrainConfig`` field (or the
    argument, such as ``recipe``) and the message says what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def default_arch(name: str) -> dict:
    """The network ``TrainConfig`` trains for architecture ``name`` when nothing else is said:
    for ``drunet`` a small U-Net (widths 32, 64, 128, one block per level), for
    ``gradient_step`` D = I - grad g with g built on that U-Net with ELU (smooth), and for the
    other architectures their constructor defaults."""
    unet = {"arch": "drunet", "widths": [32, 64, 128], "blocks": 1}
    if name == "drunet":
        return unet
    if name == "gradient_step":
        return {"arch": name, "network": {**unet, "activation": "elu"}}
    return {"arch": name}


def _check_arch_keys(arch: dict, where: str = "arch") -> None:
    """Every entry of a ``build`` config is a constructor argument of its architecture (a
    gradient-step denoiser's ``network`` checked as well); ``channels`` comes from TrainConfig."""
    if not isinstance(arch, dict) or "arch" not in arch:
        raise ConfigError("arch", f"{where} must be a dict with an 'arch' entry, got {arch!r}")
    name = arch["arch"]
    if name not in ARCHITECTURES:
        raise ConfigError(
            "arch", f"{where} must be one of {', '.join(ARCHITECTURES)}, not {name!r}"
        )
    takes = [p for p in inspect.signature(ARCHITECTURES[name]).parameters if p != "channels"]
    unknown = [k for k in arch if k not in ("arch", *takes)]
    if unknown:
        raise ConfigError(
            "arch",
            f"{where}: {name} does not take {', '.join(unknown)} (it takes {', '.join(takes)})",
        )
    if name == "gradient_step":
        if "network" not in arch:
            raise ConfigError("arch", f"{where}: gradient_step needs a 'network' entry")
        _check_arch_keys(arch["network"], f"{where} network")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_device(name) -> bool:
    if name == "auto":
        return True
    try:
        return isinstance(name, str) and torch.device(name).type in ("cpu", "cuda")
    except RuntimeError:
        return False


_PATH = (lambda v: isinstance(v, (str, os.PathLike)), "a path")
_SEED_MAX = 2**63 - 2


def _ints(minimum: int, maximum: int | None = None) -> tuple:
    if maximum is None:
        return (lambda v: _is_int(v, minimum), f"an int >= {minimum}")
    return (lambda v: _is_int(v, minimum) and v <= maximum, f"an int in {minimum}..{maximum}")


def _number(test, requirement: str) -> tuple:
    return (lambda v: _is_number(v) and test(v), requirement)


def _numbers(test, requirement: str) -> tuple:
    return (lambda v: isinstance(v, tuple) and all(map(_is_number, v)) and test(v), requirement)


def _optional(rule: tuple) -> tuple:
    return (lambda v: v is None or rule[0](v), f"None or {rule[1]}")


def _one_of(choices: tuple) -> tuple:
    return (lambda v: v in choices, f"one of {', '.join(choices)}")


# what each field must be, checked by TrainConfig.validate ("<field> must be <requirement>");
# arch is checked against the constructors of the architectures
_RULES = {
    "train_dir": _PATH,
    "out_dir": _PATH,
    "val_dir": _optional(_PATH),
    "channels": (lambda v: v in (1, 3) and not isinstance(v, bool), "1 (gray) or 3 (color)"),
    # an upper bound of 1 catches levels given on the 0..255 scale (25 for 25/255)
    "sigma": _numbers(
        lambda v: len(v) == 2 and 0 <= v[0] <= v[1] <= 1,
        "(low, high) on the [0, 1] scale (25/255 for 25), finite, 0 <= low <= high <= 1",
    ),
    "patch_size": _ints(1),
    # upper bounds on what is held in memory at once (the epoch order is images x
    # patches_per_image indices, a batch is batch_size patches built one by one) and on threads:
    # far above any real run, they turn a typo (10**9) into an error instead of a hang
    "patches_per_image": _ints(1, MAX_PATCHES_PER_IMAGE),
    "augment": (lambda v: isinstance(v, bool), "True or False"),
    "batch_size": _ints(1, MAX_BATCH_SIZE),
    "steps": _ints(1),
    "lr": _number(lambda v: v > 0, "a number > 0"),
    "lr_final": _number(lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "schedule": _one_of(SCHEDULES),
    "warmup": _ints(0),
    "milestones": _numbers(lambda v: all(0 <= m <= 1 for m in v), "fractions of steps in [0, 1]"),
    "gamma": _number(lambda v: v > 0, "a number > 0"),
    "weight_decay": _number(lambda v: v >= 0, "a number >= 0"),
    "clip": _optional(_number(lambda v: v > 0, "a number > 0 (None: no clipping)")),
    "precision": _one_of(PRECISIONS),
    "device": (_is_device, "auto, cpu, cuda or cuda:N"),
    # torch seeds are 64-bit; validation draws with seed + 1
    "seed": (lambda v: _is_int(v, 0) and v <= _SEED_MAX, "an int in 0..2**63 - 2"),
    "loss": (lambda v: isinstance(v, str), "a loss name (pnpfast.train.LOSSES)"),
    "loss_options": (lambda v: isinstance(v, dict), "a dict"),
    "init": _optional(_PATH),
    "val_every": _ints(1),
    "val_sigmas": _numbers(
        lambda v: len(v) >= 1 and 0 <= min(v) <= max(v) <= 1,
        "one or more levels in [0, 1] (the [0, 1] scale: 25/255 for 25)",
    ),
    "val_crop": _optional(_ints(1)),
    "val_images": _optional(_ints(1)),
    "checkpoint_every": _ints(1),
    "log_every": _ints(1),
    "threads": _optional(_ints(1, 1024)),
}


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``config.json``).

    Noise levels are on the [0, 1] scale: ``sigma=(0, 50/255)`` draws each patch's level
    uniformly in [0, 50]/255 (blind training); ``sigma=(25/255, 25/255)`` is non-blind.
    ``arch`` is a ``pnpfast.denoisers.architectures.build`` config without ``channels`` (taken
    from ``channels``). Construction checks every setting on its own (``validate``) and raises
    ``ConfigError`` naming the field; ``check_run`` checks what needs the files and the machine.
    """

    train_dir: str
    out_dir: str
    val_dir: str | None = None
    channels: int = 1
    arch: dict = field(default_factory=lambda: default_arch("drunet"))
    sigma: tuple[float, float] = (0.0, 50 / 255)
    patch_size: int = 64
    patches_per_image: int = 16
    augment: bool = True
    batch_size: int = 16
    steps: int = 10_000
    lr: float = 1e-3
    lr_final: float = 0.01
    schedule: str = "cosine"
    warmup: int = 0
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    weight_decay: float = 0.0
    clip: float | None = 1.0
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    loss: str = "mse"
    loss_options: dict = field(default_factory=dict)
    init: str | None = None
    val_every: int = 500
    val_sigmas: tuple[float, ...] = (15 / 255, 25 / 255, 50 / 255)
    val_crop: int | None = 256
    val_images: int | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting on its own (no file is read); ConfigError naming the first bad
        one. ``train`` calls it again, as fields may have been changed since construction."""
        for name in ("sigma", "milestones", "val_sigmas"):
            value = getattr(self, name)
            if isinstance(value, (tuple, list)) and all(map(_is_number, value)):
                setattr(self, name, tuple(float(v) for v in value))
        for name, (ok, requirement) in _RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise ConfigError(name, f"{name} must be {requirement}, got {value!r}")
        _check_arch_keys(self.arch)

    def network_config(self) -> dict:
        return {**self.arch, "channels": self.channels}

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class TrainResult:
    """What ``train`` returns: the trained model (eval mode), the step reached, the best
    validation PSNR (mean over ``val_sigmas``; None without validation) and the paths."""

    model: torch.nn.Module
    step: int
    best_psnr: float | None
    out_dir: Path
    weights: Path
    best_weights: Path | None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32. The CPU always trains in float32."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


class _Schedule:
    """The learning-rate factor at a step (a picklable callable for LambdaLR)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.kind, self.steps, self.warmup = cfg.schedule, cfg.steps, cfg.warmup
        self.final, self.gamma = cfg.lr_final, cfg.gamma
        self.milestones = [round(m * cfg.steps) for m in cfg.milestones]

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** sum(step >= m for m in self.milestones)
        span = max(self.steps - self.warmup, 1)
        t = min(max(step - self.warmup, 0) / span, 1.0)
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * t))


def _atomic_save(obj, path: Path) -> None:
    with atomic_open(path) as f:
        torch.save(obj, f)


def _atomic_text(text: str, path: Path) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


class _Validation:
    """Fixed noisy copies of the held-out images (same noise at every validation)."""

    def __init__(self, cfg: TrainConfig) -> None:
        folder = ImageFolder(cfg.val_dir, cfg.channels, what="val_dir")
        images = folder.images[: cfg.val_images] if cfg.val_images else folder.images
        self.sigmas = cfg.val_sigmas
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.items = []
        for x in images:
            if cfg.val_crop:
                h, w = x.shape[-2:]
                c = cfg.val_crop
                top, left = max((h - c) // 2, 0), max((w - c) // 2, 0)
                x = x[:, top : top + c, left : left + c]
            x = x.unsqueeze(0)
            for s in self.sigmas:
                sigma = torch.full((1,), s)
                self.items.append((s, x, noisy_copies(x, sigma, generator), sigma))
        self.skipped = folder.skipped

    @torch.no_grad()
    def run(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        scores: dict[float, list[float]] = {s: [] for s in self.sigmas}
        for s, clean, noisy, sigma in self.items:
            out = model(noisy.to(device), sigma.to(device))
            if not bool(torch.isfinite(out).all()):  # one sync per validation image, not per step
                raise FloatingPointError(
                    f"validation: the network returned NaN or Inf on a validation image at "
                    f"sigma {s * 255:g}/255 although the training loss is finite; lower lr, set "
                    f"clip, or train in float32"
                )
            scores[s].append(float(psnr(out.clamp(0, 1), clean.to(device)).mean()))
        model.train(was_training)
        result = {f"val_psnr_{round(s * 255, 2):g}": sum(v) / len(v) for s, v in scores.items()}
        result["val_psnr"] = sum(result.values()) / len(result)
        return result


class _Log:
    """``log.jsonl``, appended line by line; on resume the lines past the checkpoint's step are
    dropped, so the log of a resumed run equals that of an uninterrupted one."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is None:
            _atomic_text("", path)
        elif path.exists():
            kept = [
                line for line, record in self._read(path) if record.get("step", 0) <= resume_step
            ]
            _atomic_text("".join(f"{line}\n" for line in kept), path)

    @staticmethod
    def _read(path: Path) -> list[tuple[str, dict]]:
        """The (line, record) pairs of the log. A last line that is not a JSON object is what a
        crash in the middle of ``write`` leaves: it is dropped with a warning (the caller
        rewrites the log without it). Any other such line is an error naming the file and line."""
        numbered = [
            (n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()
        ]
        out = []
        for i, (n, line) in enumerate(numbered):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a {type(record).__name__}, not an object")
            except ValueError as err:
                if i == len(numbered) - 1:
                    warnings.warn(
                        f"{path}: dropping line {n}, a torn last line ({err}), left by an "
                        "interrupted write; the log is rewritten without it",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    break
                raise ValueError(
                    f"{path}: line {n} of {len(numbered)} is not a JSON object ({err}); only a "
                    "torn last line is dropped on resume: repair or delete the line, or move the "
                    "log away to start it over"
                ) from None
            out.append((line, record))
        return out

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def read_init(path: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The float32 state dict of the pnpfast weight file ``path``, checked to hold ``model``'s
    architecture; ConfigError (naming ``init``) for a file that cannot be read, is not a pnpfast
    weight file or holds another architecture."""
    try:
        stored = read_weights(path)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError("init", f"init: {exc}") from None
    if stored.config != model.config():
        raise ConfigError(
            "init",
            f"init {path} holds {stored.config}, not the architecture trained here "
            f"({model.config()})",
        )
    return {k: v.float() for k, v in stored.state_dict.items()}


@dataclass
class _Run:
    """What ``train`` builds before it writes anything (all of it checked)."""

    device: torch.device
    folder: ImageFolder
    validation: _Validation | None
    model: torch.nn.Module
    loss_fn: LossFn
    checkpoint: dict | None


def _checked_device(name: str) -> torch.device:
    device = _device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"device {name} was asked for but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                "device", f"device {name}: there are {torch.cuda.device_count()} CUDA devices"
            )
    return device


def _read_checkpoint(cfg: TrainConfig, path: Path) -> dict:
    """The checkpoint a run of ``cfg`` resumes from; ConfigError naming ``out_dir`` when it
    cannot be read or holds a run of another configuration (one that differs in a field not in
    ``RESUMABLE_FIELDS``), with the old and new value of each such field."""
    start_over = "start over with resume=False (pnpfast train --fresh)"
    try:
        # a file train wrote; the optimizer state and RNG states need the full unpickler
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        saved, _ = dict(ckpt["config"]), int(ckpt["step"])
    except Exception as exc:  # torch.load fails in many ways on a damaged file
        raise ConfigError(
            "out_dir", f"{path} cannot be read ({exc}); {start_over} or use another out_dir"
        ) from None
    wanted = cfg.to_json()
    changed = [
        f"{k} {saved.get(k)!r} there, {wanted.get(k)!r} now"
        for k in sorted(set(saved) | set(wanted))
        if k not in RESUMABLE_FIELDS and saved.get(k) != wanted.get(k)
    ]
    if changed:
        may = ", ".join(sorted(RESUMABLE_FIELDS))
        raise ConfigError(
            "out_dir",
            f"{path} holds a run of another configuration ({'; '.join(changed)}); resume it "
            f"with the same settings (only {may} may change), use another out_dir, or "
            f"{start_over}",
        )
    return ckpt


def _check_out_dir(out_dir: str | os.PathLike) -> None:
    """``out_dir`` is a folder or can be made one: ConfigError when it, or the nearest of its
    parents that exists, is a file, or when that parent cannot be written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("out_dir", f"out_dir {out} is a file, not a folder")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError("out_dir", f"out_dir {out} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError("out_dir", f"out_dir {out} cannot be written: {existing} is read-only")


def _checked_config(config) -> TrainConfig:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, not {type(config).__name__}")
    config.validate()
    return config


def _prepare(cfg: TrainConfig, loss: LossFn | None, resume: bool) -> _Run:
    """Build the network and the loss (the seed set first, as ``train`` needs), read the
    folders and the checkpoint to resume from; ConfigError naming the field of anything that
    cannot work. Writes nothing."""
    device = _checked_device(cfg.device)
    _check_out_dir(cfg.out_dir)
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be callable as loss(model, batch), not {type(loss).__name__}")
    torch.manual_seed(cfg.seed)
    try:
        model = build(cfg.network_config())
    except (TypeError, ValueError) as exc:
        raise ConfigError("arch", f"arch {cfg.arch['arch']}: {exc}") from None
    if cfg.init:
        model.load_state_dict(read_init(cfg.init, model))
    if loss is None:
        if cfg.loss not in LOSSES:
            raise ConfigError("loss", f"loss must be one of {', '.join(LOSSES)}, not {cfg.loss!r}")
        try:
            loss = make_loss(cfg.loss, cfg.loss_options)
        except (TypeError, ValueError) as exc:
            raise ConfigError("loss_options", f"loss_options of loss {cfg.loss}: {exc}") from None

    try:
        folder = ImageFolder(cfg.train_dir, cfg.channels, min_size=cfg.patch_size, what="train_dir")
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError("train_dir", str(exc)) from None
    try:
        validation = _Validation(cfg) if cfg.val_dir else None
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError("val_dir", str(exc)) from None

    ckpt_path = Path(cfg.out_dir) / "checkpoint.pt"
    checkpoint = _read_checkpoint(cfg, ckpt_path) if resume and ckpt_path.exists() else None
    return _Run(device, folder, validation, model, loss, checkpoint)


def check_run(config: TrainConfig, *, loss: LossFn | None = None, resume: bool = True) -> int:
    """Check everything ``train(config, loss=loss, resume=resume)`` would reject, without
    writing anything or changing the global random state: the settings, the device, the
    training and validation folders, the network, ``init``, the loss and its options, and a
    checkpoint in ``out_dir`` (when resuming: it must be of the same configuration, up to the
    ``RESUMABLE_FIELDS``). Raises ConfigError naming the field; returns the step the run
    resumes from (0 when it starts from scratch).
    """
    _checked_config(config)
    cuda = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        run = _prepare(config, loss, resume)
    return int(run.checkpoint["step"]) if run.checkpoint is not None else 0


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def train(
    config: TrainConfig,
    *,
    loss: LossFn | None = None,
    resume: bool = True,
    progress: bool = True,
    on_ready: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train the network of ``config`` and return a ``TrainResult``.

    ``loss`` overrides ``config.loss`` with any callable of the loss protocol
    (``pnpfast.train.losses``). With ``resume`` (default) a ``checkpoint.pt`` in ``out_dir``
    from a run of the same configuration is continued (only the ``RESUMABLE_FIELDS`` may
    differ); ``resume=False`` starts over. ``progress`` shows a progress bar with the loss and
    the validation PSNR. ``on_ready(step)``, when given, is called once every check has passed
    and before anything is written, with the step the run resumes from (0 from scratch): the
    command line prints its summary there, so the run is checked and prepared only once.

    Everything ``check_run`` checks is checked before anything is written: a ConfigError
    (a ValueError) naming the field, for instance a checkpoint of another configuration.
    FloatingPointError when the loss becomes NaN or Inf.
    """
    cfg = _checked_config(config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = _prepare(cfg, loss, resume)
    if on_ready is not None:
        on_ready(int(run.checkpoint["step"]) if run.checkpoint is not None else 0)
    device = run.device
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    folder, validation = run.folder, run.validation
    for path, reason in folder.skipped + (validation.skipped if validation else []):
        print(f"pnpfast train: skipped {path}: {reason}", flush=True)

    model = run.model.to(device).train()
    loss_fn = run.loss_fn
    loss_module = loss_fn if isinstance(loss_fn, torch.nn.Module) else None
    if loss_module is not None:
        loss_module.to(device).train()
    params = list(model.parameters()) + (list(loss_module.parameters()) if loss_module else [])
    if cfg.weight_decay:
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _Schedule(cfg))
    amp = _autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    sampler = PatchSampler(
        folder,
        cfg.patch_size,
        cfg.patches_per_image,
        NoiseModel(*cfg.sigma),
        seed=cfg.seed,
        augment=cfg.augment,
    )

    step, best = 0, None
    sums: dict[str, float | torch.Tensor] = {}
    count = 0
    resume_step = None
    if run.checkpoint is not None:
        ckpt = run.checkpoint
        model.load_state_dict(ckpt["model"])
        if loss_module is not None:
            loss_module.load_state_dict(ckpt["loss"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        sampler.load_state_dict(ckpt["sampler"])
        _set_rng_state(ckpt["rng"], device)
        step, best = int(ckpt["step"]), ckpt["best_psnr"]
        sums, count = dict(ckpt.get("log_sums", {})), int(ckpt.get("log_count", 0))
        resume_step = step
    _atomic_text(json.dumps(cfg.to_json(), indent=2) + "\n", out / "config.json")
    log = _Log(out / "log.jsonl", resume_step)
    best_path = out / "best.pt"
    if resume_step is None:
        # starting over: a best.pt left by an earlier run is not this run's
        best_path.unlink(missing_ok=True)

    meta = {"train_dir": str(cfg.train_dir), "sigma_range": list(cfg.sigma), "loss": cfg.loss}

    def checkpoint() -> None:
        _atomic_save(
            {
                "config": cfg.to_json(),
                "model": model.state_dict(),
                "loss": loss_module.state_dict() if loss_module is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "sampler": sampler.state_dict(),
                "rng": _rng_state(device),
                "step": step,
                "best_psnr": best,
                # the metrics summed since the last log line, so a resumed log is the same
                "log_sums": {k: float(v) for k, v in sums.items()},
                "log_count": count,
            },
            ckpt_path,
        )
        save_weights(model, out / "model.pt", meta={**meta, "step": step})
        # networks trained inside the loss (PnP-ReG's G) get weight files of their own
        for name, net in getattr(loss_module, "networks", dict)().items():
            save_weights(net, out / f"{name}.pt", meta={**meta, "step": step})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    last_saved = step
    # a device flag, read only when logging or saving: no host synchronisation per step
    diverged = torch.zeros((), dtype=torch.bool, device=device)

    def check_finite() -> None:
        if bool(diverged):
            raise FloatingPointError(
                f"the training loss became NaN or Inf between step {last_saved + 1} and step "
                f"{step}; lower lr or set clip (the checkpoint of step {last_saved} in "
                f"{ckpt_path} is intact)"
            )

    while step < cfg.steps:
        batch = sampler.next_batch(cfg.batch_size).to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            value, metrics = loss_fn(model, batch)
        diverged |= ~torch.isfinite(value.detach())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(value).backward()
        if cfg.clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        # summed on the device: no host synchronisation per step
        for k, v in {"loss": value, **metrics}.items():
            v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
            sums[k] = sums[k] + v if k in sums else v
        count += 1
        if bar is not None:
            bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            check_finite()
            record = {"step": step, **{k: float(v) / count for k, v in sums.items()}}
            record["lr"] = scheduler.get_last_lr()[0]
            record["seconds"] = round(time.perf_counter() - started, 3)
            log.write(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.3g}")
            sums, count = {}, 0
        if validation is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            check_finite()
            scores = validation.run(model, device)
            log.write({"step": step, **scores})
            if best is None or scores["val_psnr"] > best:
                best = scores["val_psnr"]
                save_weights(model, best_path, meta={**meta, "step": step, **scores})
            if bar is not None:
                bar.set_postfix(val_psnr=f"{scores['val_psnr']:.2f}", best=f"{best:.2f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            check_finite()
            checkpoint()
            last_saved = step
    if bar is not None:
        bar.close()
    model.eval()
    return TrainResult(
        model, step, best, out, out / "model.pt", best_path if best is not None else None
    )
