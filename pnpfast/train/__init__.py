"""Training denoisers: data, losses, the loop and the weight file.

    from pnpfast.train import TrainConfig, train
    result = train(TrainConfig(train_dir="BSD400", val_dir="Set5", out_dir="runs/gray"))

Also ``pnpfast train ...`` on the command line. See ``pnpfast.train.loop`` for what a run
writes and how it resumes, and ``pnpfast.train.losses`` for the loss hook.
"""

from pnpfast.denoisers.weight_file import save_weights
from pnpfast.train.data import Batch, ImageFolder, NoiseModel, PatchSampler
from pnpfast.train.loop import ConfigError, TrainConfig, TrainResult, check_run, train
from pnpfast.train.losses import LOSSES, MSELoss, NoiseWeightedMSELoss, register_loss

__all__ = [
    "LOSSES",
    "Batch",
    "ConfigError",
    "ImageFolder",
    "MSELoss",
    "NoiseModel",
    "NoiseWeightedMSELoss",
    "PatchSampler",
    "TrainConfig",
    "TrainResult",
    "check_run",
    "register_loss",
    "save_weights",
    "train",
]
