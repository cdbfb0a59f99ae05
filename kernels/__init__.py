"""Triton kernels of pnpfast, installed as ``pnpfast.kernels``: one file per fused op.

Each module imports triton at its top, so import a module here only when the triton backend
has been chosen. No solver logic lives here.
"""
