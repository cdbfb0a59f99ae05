"""Fused ops: each file holds ``<op>_reference`` (pure torch) and the dispatched ``<op>``."""

from pnpfast.ops._alloc import poisoned_outputs
from pnpfast.ops.constrained_step import constrained_step, constrained_step_reference
from pnpfast.ops.fft_grad import fft_grad, fft_grad_reference
from pnpfast.ops.fft_prox import fft_prox, fft_prox_reference
from pnpfast.ops.pnp_update import pnp_update, pnp_update_reference
from pnpfast.ops.power_step import power_step, power_step_reference
from pnpfast.ops.sr_prox import sr_prox, sr_prox_reference

__all__ = [
    "constrained_step",
    "constrained_step_reference",
    "fft_grad",
    "fft_grad_reference",
    "fft_prox",
    "fft_prox_reference",
    "pnp_update",
    "pnp_update_reference",
    "poisoned_outputs",
    "power_step",
    "power_step_reference",
    "sr_prox",
    "sr_prox_reference",
]
