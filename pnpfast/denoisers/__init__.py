"""Denoisers for Plug-and-Play: the protocol ``D(x, sigma) -> x_hat``, the shipped networks,
network architectures for public and trained weights, classical denoisers, and ``load``.

    D = pnpfast.denoisers.load()                          # shipped noise-conditional DRUNet
    D = pnpfast.denoisers.load("blind")                   # shipped blind bias-free U-Net
    D = pnpfast.denoisers.load("dncnn", weights="dncnn_25.pth")
    x_hat = D(y, 25 / 255)          # y [B, C, H, W] on the [0, 1] scale
"""

from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.bfcnn import BFCNN
from pnpfast.denoisers.dncnn import DnCNN
from pnpfast.denoisers.drunet import DRUNet
from pnpfast.denoisers.gaussian import GaussianSmoothing
from pnpfast.denoisers.gradient_step import GradientStep
from pnpfast.denoisers.loaders import load
from pnpfast.denoisers.shipped import ByChannels
from pnpfast.denoisers.tv import TotalVariation

__all__ = [
    "BFCNN",
    "ByChannels",
    "DRUNet",
    "Denoiser",
    "DnCNN",
    "GaussianSmoothing",
    "GradientStep",
    "TotalVariation",
    "load",
]
