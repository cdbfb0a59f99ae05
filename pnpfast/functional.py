"""Plain-tensor steps for hand-written PnP loops (DPIR/KAIR, GS-PnP, Prox-PnP, the sampler).

Work in progress in this session (issue 20).
"""

__all__: list[str] = []
