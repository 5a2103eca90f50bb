"""Dtype names accepted everywhere a dtype is given, with a clear error."""
import numpy as _onp

from .errors import DTypeError

SUPPORTED = ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
             'uint8', 'bool')
_SUPPORTED = {_onp.dtype(n) for n in SUPPORTED}
float32 = _onp.dtype('float32')
DEFAULT = float32


def as_dtype(dtype, where=''):
    """Normalize ``'float32'``, ``np.float32``, ``float`` ... to a numpy dtype."""
    if dtype is None:
        return DEFAULT
    try:
        d = _onp.dtype(dtype)
    except TypeError:
        d = None
    if d not in _SUPPORTED:
        at = f' {where}' if where else ''
        raise DTypeError(f'unknown or unsupported dtype {dtype!r}{at}; '
                         f'supported dtypes: {", ".join(SUPPORTED)}')
    return d
