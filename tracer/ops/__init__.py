"""The op registry (see :mod:`tracer.ops.registry`) and every primitive.

``OPS`` maps names to :class:`Op` objects; each is also importable by name
(``from tracer.ops import add``) and callable on arrays or scalars.
"""
from .registry import OPS, GradCtx, Kind, Op, Spec, get, register  # noqa: F401
from .elementwise import (  # noqa: F401
    abs, add, astype, invert, clip, divide, equal, erf, exp, floor_divide, greater, greater_equal,
    less, less_equal, log, logical_and, logical_not, logical_or, maximum, minimum, mod,
    multiply, negative, not_equal, power, relu, sigmoid, sign, softrelu, sqrt, stop_gradient,
    subtract, tanh, where)
from .reduction import (  # noqa: F401
    argmax, argmin, layer_norm, log_softmax, max, min, prod, softmax, sum)
from .linalg import matmul  # noqa: F401
from .movement import (  # noqa: F401
    IndexArg, broadcast_to, concatenate, getitem, index_add, reshape, setitem, transpose)
from . import random  # noqa: F401
