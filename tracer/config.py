"""Process-wide debugging switches, all in one place.

``TRACER_DEBUG_EAGER=1`` (environment), ``set_debug_eager(True)`` or
``with debug_eager():`` make every hybridized block run its Python
``forward`` eagerly, so ``print`` and ``breakpoint()`` work inside it.

``TRACER_NATIVE=0`` runs hybridized graphs on the NumPy reference
interpreter instead of native code (to rule the code generator out).
"""
import os

_debug_eager = os.environ.get('TRACER_DEBUG_EAGER', '') not in ('', '0')


def speculation_enabled():
    """``TRACER_SPECULATE=0``: a branch on an array value is a graph break
    (eager fallback) instead of a guarded, specialized graph."""
    return os.environ.get('TRACER_SPECULATE', '1') not in ('0', '')


def native_enabled():
    return os.environ.get('TRACER_NATIVE', '1') not in ('0', '')



def is_debug_eager():
    return _debug_eager


def set_debug_eager(flag=True):
    """Turn debug-eager mode on or off; returns the previous setting."""
    global _debug_eager
    old, _debug_eager = _debug_eager, bool(flag)
    return old


class debug_eager:
    """``with tracer.debug_eager():`` -- hybridized blocks run eagerly inside."""

    def __init__(self, flag=True):
        self.flag = flag

    def __enter__(self):
        self.old = set_debug_eager(self.flag)
        return self

    def __exit__(self, *exc):
        set_debug_eager(self.old)
