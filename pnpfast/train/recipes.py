"""The recipes of the denoisers pnpfast ships: ``TrainConfig`` presets by name.

    pnpfast train --recipe conditional-gray --train-dir BSD400 --val-dir Set5 --out runs/cg

Each recipe fixes everything but the folders; the README records the command, the machine, the
time and the PSNR of every shipped file.

* ``conditional-*``: DRUNet with a noise-level map, widths (32, 64, 128), one residual block per
  level, no biases (as DPIR), a global residual connection (D(x) = x + U(x)), sigma uniform in
  [0, 60]/255, 4000 steps of 16 patches 64x64
  (Adam, lr 1e-3 with 200 warm-up steps and cosine decay to 1e-5, gradient norm clipped at 1); for HQS/DPIR, ADMM and the
  gradient-step methods, whose schedules set the strength through sigma.
* ``blind-*``: the same U-Net without the noise map, bias-free with ReLU (positively
  homogeneous, as BF-CNN), sigma uniform in [0, 100]/255 (the range of the public BF-CNN);
  for RED and the implicit-prior sampler.

* ``gradient-step-*``: the gradient-step denoiser D = I - grad g, g = 1/2 ||x - N(x)||^2, of the
  same U-Net with ELU (smooth: Hurault et al., ICLR 2022), sigma uniform in [0, 50]/255.
* ``proximal-*``: the same with softplus and the ``spectral-penalty`` loss (weight 1e-2,
  hinge at 0.9, the norm by 20 Lanczos steps: power iteration's estimate stays low where the
  top of the spectrum is crowded, at high noise), which keeps ||Hess g|| under 1 (Hurault et
  al., ICML 2022); start it from a gradient-step run with ``--init``, as the paper fine-tunes.
* ``pnp-reg-*``: the conditional U-Net as D and a blind U-Net of the same widths as the
  regulariser gradient G, trained jointly with the ``pnp-reg`` loss (Fermanian et al. 2023),
  sigma in [0, 50]/255; G is written as ``G.pt``.

The shipped files are each recipe followed by a second run from its best weights: 6000 more
steps at lr 5e-4 (100 warm-up steps), with the ``mse-sigma`` loss for the blind ones (the exact
commands are in each file's meta and in the README).
"""

import copy

from pnpfast.train.loop import ConfigError, TrainConfig

__all__ = ["RECIPES", "recipe", "recipe_settings"]

_UNET = {"arch": "drunet", "widths": [32, 64, 128], "blocks": 1, "bias": False, "residual": True}
_COMMON = {
    "patch_size": 64,
    "patches_per_image": 64,
    "batch_size": 16,
    "steps": 4000,
    "lr": 1e-3,
    "lr_final": 0.01,
    "schedule": "cosine",
    "warmup": 200,
    "clip": 1.0,
    "val_every": 1000,
    "checkpoint_every": 250,
    "log_every": 50,
    "val_crop": 256,
    "seed": 0,
}

_GS = {
    "arch": "gradient_step",
    "network": {**_UNET, "noise_map": True, "activation": "elu"},
}
_PROX = {**_GS, "network": {**_GS["network"], "activation": "softplus"}}
_PENALTY = {"weight": 1e-2, "eps": 0.1, "iters": 20, "method": "lanczos"}
_CONVERGENT_SIGMA = (0.0, 50 / 255)

RECIPES: dict[str, dict] = {
    "conditional-gray": {
        **_COMMON,
        "channels": 1,
        "arch": {**_UNET, "noise_map": True},
        "sigma": (0.0, 60 / 255),
    },
    "conditional-color": {
        **_COMMON,
        "channels": 3,
        "arch": {**_UNET, "noise_map": True},
        "sigma": (0.0, 60 / 255),
    },
    "blind-gray": {
        **_COMMON,
        "channels": 1,
        "arch": {**_UNET, "noise_map": False},
        "sigma": (0.0, 100 / 255),
    },
    "blind-color": {
        **_COMMON,
        "channels": 3,
        "arch": {**_UNET, "noise_map": False},
        "sigma": (0.0, 100 / 255),
    },
}
for _channels, _kind in ((1, "gray"), (3, "color")):
    RECIPES[f"gradient-step-{_kind}"] = {
        **_COMMON,
        "channels": _channels,
        "arch": _GS,
        "sigma": _CONVERGENT_SIGMA,
    }
    RECIPES[f"proximal-{_kind}"] = {
        **_COMMON,
        "channels": _channels,
        "arch": _PROX,
        "sigma": _CONVERGENT_SIGMA,
        "loss": "spectral-penalty",
        "loss_options": _PENALTY,
    }
    RECIPES[f"pnp-reg-{_kind}"] = {
        **_COMMON,
        "channels": _channels,
        "arch": {**_UNET, "noise_map": True},
        "sigma": _CONVERGENT_SIGMA,
        "loss": "pnp-reg",
        "loss_options": {"network": {**_UNET, "noise_map": False, "channels": _channels}},
    }


def recipe_settings(name: str) -> dict:
    """A copy of the settings of recipe ``name`` (``TrainConfig`` keyword arguments without the
    folders); ConfigError naming ``recipe`` for an unknown name."""
    if name not in RECIPES:
        raise ConfigError("recipe", f"recipe must be one of {', '.join(RECIPES)}, not {name!r}")
    return copy.deepcopy(RECIPES[name])


def recipe(name: str, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name`` with ``overrides`` (at least ``train_dir`` and
    ``out_dir``) applied."""
    return TrainConfig(**{**recipe_settings(name), **overrides})
