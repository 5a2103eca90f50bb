"""Facts about CPython and numpy objects that native entries rely on, checked
when this module is imported (before any native entry is created):
the PyArrayObject field offsets the entry reads, and the host addresses
handed to it through its ``self`` array."""
import ctypes
import sys

import numpy as _onp

from codegen.lower.module import (DATA, DESCR, DESCR_BYTEORDER, DESCR_TYPE_NUM, DIMS, FLAGS, ND,
                                  OB_TYPE)


class LayoutMismatch(RuntimeError):
    """This numpy/CPython build lays out arrays differently than expected."""


def _i64(addr):
    return ctypes.c_int64.from_address(addr).value


def _i32(addr):
    return ctypes.c_int32.from_address(addr).value


def _check(a):
    base = id(a)
    probs = []
    if _i64(base + DATA) != a.ctypes.data:
        probs.append('data')
    if _i32(base + ND) != a.ndim:
        probs.append('nd')
    dims, strides = _i64(base + DIMS), _i64(base + DIMS + 8)
    if a.ndim and [_i64(dims + 8 * i) for i in range(a.ndim)] != list(a.shape):
        probs.append('dimensions')
    if a.ndim and [_i64(strides + 8 * i) for i in range(a.ndim)] != list(a.strides):
        probs.append('strides')
    if _i64(base + OB_TYPE) != id(type(a)):
        probs.append('ob_type')
    descr = _i64(base + DESCR)
    if descr != id(a.dtype):
        probs.append('descr')
    if _i32(descr + DESCR_TYPE_NUM) != a.dtype.num:
        probs.append('type_num')
    if chr(ctypes.c_char.from_address(descr + DESCR_BYTEORDER).value[0]) != a.dtype.byteorder:
        probs.append('byteorder')
    flags = _i32(base + FLAGS)
    for bit, name in ((0x1, 'c_contiguous'), (0x2, 'f_contiguous'), (0x100, 'aligned'),
                      (0x400, 'writeable')):
        if bool(flags & bit) != bool(getattr(a.flags, name)):
            probs.append(f'flag {name}')
    return probs


def verify_layout():
    if sys.maxsize <= 2 ** 32 or sys.implementation.name != 'cpython':
        raise LayoutMismatch('native entries need 64-bit CPython')
    x = _onp.zeros((3, 10, 7), _onp.float32)
    ro = _onp.ones(5, _onp.float32)
    ro.flags.writeable = False
    probes = [x, x[:, ::2, :], _onp.zeros((4, 6)).reshape(6, 4)[::2],
              _onp.asfortranarray(_onp.zeros((3, 4), _onp.int16)), ro,
              _onp.zeros((), _onp.float64)]
    for a in probes:
        probs = _check(a)
        if probs:
            raise LayoutMismatch(f'numpy {_onp.__version__}: unexpected PyArrayObject layout '
                                 f'({", ".join(probs)}); native code is disabled')


def host_symbols():
    """Addresses the native entry needs (passed at run time, never baked in)."""
    api = ctypes.pythonapi
    return {
        'ndarray_type': id(_onp.ndarray),
        'PyErr_SetString': ctypes.cast(api.PyErr_SetString, ctypes.c_void_p).value,
        'PyExc_ValueError': id(ValueError),
        'PyExc_IndexError': id(IndexError),
    }


verify_layout()
