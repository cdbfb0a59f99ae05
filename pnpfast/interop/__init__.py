"""Interoperation with other PnP codebases, one module per library.

``pnpfast.interop.deepinv`` accelerates deepinv physics in place of the originals and wraps
denoisers both ways. It imports deepinv, so it is imported only on request
(``import pnpfast.interop.deepinv``); this package itself imports nothing, and ``import pnpfast``
never needs deepinv.
"""
