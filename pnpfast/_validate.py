"""Argument checks at the public boundary: errors name the argument and what is wrong.

Finiteness checks read the data (and synchronise with the device), so they run where a user
hands data in, never inside a solver iteration.
"""

import math
import numbers

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def image(name: str, x, *, finite: bool = True, dtypes=FLOAT_DTYPES) -> torch.Tensor:
    """A [B, C, H, W] floating tensor, optionally checked for NaN and Inf."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [B, C, H, W], not {type(x).__name__}"
        )
    if x.dim() != 4:
        raise ValueError(
            f"{name} must have shape [B, C, H, W] (4 dimensions), got shape {tuple(x.shape)}"
        )
    if x.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(
            f"{name} must have dtype {names}, not {str(x.dtype).removeprefix('torch.')}"
        )
    not_empty(name, x)
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def not_empty(name: str, x: torch.Tensor) -> None:
    """x holds data: not on the meta device, no dimension of size 0 (batch, channels, sizes)."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device (it holds no data): move it to cpu or cuda first"
        )
    if x.numel() == 0:
        what = "a batch of size 0" if x.dim() == 4 and x.shape[0] == 0 else "a dimension of size 0"
        raise ValueError(f"{name} has {what} (shape {tuple(x.shape)}): there is nothing to restore")


def same_device_dtype(**tensors: torch.Tensor) -> None:
    """All tensors on one device with one dtype."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}")
        if t.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first_name} has {first.dtype}")


def same_batch(**tensors: torch.Tensor) -> None:
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch sizes differ: {sizes}")


def per_image(
    name: str,
    value,
    batch: int,
    like: torch.Tensor,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    upper: float | None = None,
    check_values: bool = True,
) -> torch.Tensor:
    """A per-image parameter (float or length-B tensor) as a [B] tensor on like's device/dtype.

    The values of a tensor are read (one host synchronisation) only with ``check_values``;
    without it only its form is checked. Python numbers are always checked.
    """
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            value = value.reshape(1)
        if value.dim() != 1 or value.shape[0] not in (1, batch):
            raise ValueError(
                f"{name} must be a float or a tensor of length {batch} (one per image), got shape {tuple(value.shape)}"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be real, not {value.dtype}")
        not_empty(name, value)
        t = value.to(device=like.device, dtype=like.dtype).expand(batch).contiguous()
        # not while CUDA-graph capture records this stream (a read would end it): the values
        # were checked by the calls before capture, and replays run no Python
        capturing = t.is_cuda and torch.cuda.is_current_stream_capturing()
        values = t.detach().cpu().tolist() if check_values and not capturing else []
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        # the value as the images' dtype holds it (read on the CPU: no device sync), so that
        # 1e300 (Inf in float32) or a positive 1e-300 (0 in float32) is named here, not a NaN later
        held = torch.tensor(v, dtype=like.dtype).item() if math.isfinite(v) else v
        dtype = str(like.dtype).removeprefix("torch.")
        if math.isfinite(v) and not math.isfinite(held):
            raise ValueError(f"{name} must be finite in {dtype}: {v} overflows to {held}")
        if positive and v > 0 and held == 0:
            raise ValueError(f"{name} must be > 0 in {dtype}: {v} underflows to 0")
        values = [v] * batch
        t = torch.full((batch,), v, device=like.device, dtype=like.dtype)
    else:
        raise TypeError(
            f"{name} must be a float or a tensor of length {batch}, not {type(value).__name__}"
        )
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
        if positive and v <= 0:
            raise ValueError(f"{name} must be > 0, got {v}")
        if nonnegative and v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
        if upper is not None and v > upper:
            raise ValueError(f"{name} must be <= {upper}, got {v}")
    return t


# Scalar arguments: one wording and one error policy for every module (TypeError for a wrong
# type, ValueError for a value out of range). ``name`` may carry a prefix ("spectral_norm:
# iters"); ``hint`` is a why appended to the requirement ("(iterations are counted in int64)").

SEED_MAX = 2**63 - 1


def _bound(v) -> str:
    if v == SEED_MAX:
        return "2**63 - 1"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _short(value) -> str:
    """repr(value) cut short (a tensor's or a 400-digit int's repr is long)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown(value) -> str:
    return f"{type(value).__name__} {_short(value)}"


def _hint(hint: str) -> str:
    return f" {hint}" if hint else ""


def integer(name: str, value, low: int, high: int | None = None, *, hint: str = "") -> int:
    """An int (numpy integers too, never a bool) in [low, high] (high None: no upper bound),
    returned as a Python int."""
    what = f"an int >= {_bound(low)}" if high is None else f"an int in [{low}, {_bound(high)}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}{_hint(hint)}, not {_shown(value)}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {what}{_hint(hint)}, not {_short(value)}")
    return int(value)


def flag(name: str, value) -> bool:
    """A bool (a string "no" or an int 0 is not accepted: they would be read as truthiness)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {_shown(value)}")
    return value


def seed(name: str, value) -> int:
    """A random seed: an int in [0, 2**63 - 1] (what torch.Generator.manual_seed takes)."""
    return integer(name, value, 0, SEED_MAX)


def number(
    name: str,
    value,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """A finite real number (not a bool, not a tensor) in [low, high], returned as a float;
    ``low_open``/``high_open`` exclude the bound itself."""
    parts = []
    if low != -math.inf:
        parts.append(f"{'>' if low_open else '>='} {_bound(low)}")
    if high != math.inf:
        parts.append(f"{'<' if high_open else '<='} {_bound(high)}")
    if len(parts) == 2:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        what = f"a finite number in {left}{_bound(low)}, {_bound(high)}{right}"
    else:
        what = " ".join(["a finite number", *parts])
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}{_hint(hint)}, not {_shown(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        v = math.inf
    ok = (
        math.isfinite(v)
        and (v > low if low_open else v >= low)
        and (v < high if high_open else v <= high)
    )
    if not ok:
        raise ValueError(f"{name} must be {what}{_hint(hint)}, not {_short(value)}")
    return v


def cuda_device_present(device: torch.device, hint: str = "") -> None:
    """A CUDA ``device`` this process can use: ValueError, naming it, when CUDA is absent or
    the index is past the devices there are (``hint`` ends that message). Other devices pass."""
    if device.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for but CUDA is not available")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {device} was asked for but there are {torch.cuda.device_count()} CUDA "
            f"devices{hint}"
        )
