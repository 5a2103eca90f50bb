"""Reverse-mode automatic differentiation on a tape.

While recording, every op whose inputs need gradients attaches a
:class:`Node` to its result (the op, its attributes and the input and output
values).  ``backward`` walks those nodes in reverse topological order and
calls each op's registered gradient rule -- the same rules the compiler will
use to build backward graphs.  Leaves (arrays that called ``attach_grad``)
own a :class:`Leaf` with their gradient buffer.

Mode switches mirror MXNet: ``record(train_mode=True)``, ``pause()``,
``train_mode()``, ``predict_mode()``.
"""
import numpy as _onp

from .ndarray import NDArray, wrap


class _State:
    __slots__ = ('recording', 'training')

    def __init__(self):
        self.recording = False
        self.training = False


state = _State()


class Leaf:
    """Autograd identity of an array with an attached gradient."""
    __slots__ = ('grad', 'grad_req', '__weakref__')

    def __init__(self, grad, grad_req):
        self.grad = grad
        self.grad_req = grad_req


class Node:
    """One recorded op application."""
    __slots__ = ('op', 'attrs', 'inputs', 'out', 'parents', '__weakref__')

    def __init__(self, op, attrs, inputs, out, parents):
        self.op = op
        self.attrs = attrs
        self.inputs = inputs      # raw values: numpy arrays or Python scalars
        self.out = out            # numpy array
        self.parents = parents    # Node, Leaf or None per input


def record_op(op, args, vals, attrs, res):
    """Called by the dispatcher while recording: attach a Node to ``res``."""
    if op.grad is None:
        return
    parents = [a._node if isinstance(a, NDArray) else None for a in args]
    if op.nondiff:
        for i in op.nondiff:
            if i >= len(parents):
                break
            parents[i] = None
    for p in parents:
        if p is not None:
            res._node = Node(op, attrs, vals, res._data, tuple(parents))
            return


# ------------------------------------------------------------------ switches

class _scope:
    """Set the recording/training flags for a ``with`` block (None: keep)."""
    __slots__ = ('recording', 'training', 'old')

    def __init__(self, recording, training):
        self.recording, self.training = recording, training

    def __enter__(self):
        self.old = state.recording, state.training
        if self.recording is not None:
            state.recording = self.recording
        if self.training is not None:
            state.training = self.training
        return self

    def __exit__(self, *exc):
        state.recording, state.training = self.old


def record(train_mode=True):
    """Record ops for ``backward`` inside this ``with`` block."""
    return _scope(True, train_mode)


def pause(train_mode=False):
    """Stop recording inside this ``with`` block."""
    return _scope(False, train_mode)


def train_mode():
    """Layers such as Dropout and BatchNorm behave as in training."""
    return _scope(None, True)


def predict_mode():
    """Layers such as Dropout and BatchNorm behave as in inference."""
    return _scope(None, False)


def is_recording():
    return state.recording


def is_training():
    return state.training


def set_recording(flag):
    old, state.recording = state.recording, bool(flag)
    return old


def set_training(flag):
    old, state.training = state.training, bool(flag)
    return old


def mark_variables(variables, gradients=None, grad_reqs='write'):
    """Attach gradient buffers to arrays (MXNet's lower-level ``attach_grad``)."""
    if isinstance(variables, NDArray):
        variables = [variables]
    for i, v in enumerate(variables):
        req = grad_reqs if isinstance(grad_reqs, str) else grad_reqs[i]
        v.attach_grad(req)
        if gradients is not None:
            v._node.grad = gradients[i]


# ------------------------------------------------------------------ backward

def _topo_order(heads):
    """Nodes reachable from ``heads``, each before every node it depends on."""
    order, visited = [], set()
    stack = [(h, False) for h in heads if h is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)          # post-order: after all of its inputs
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Node):
            if node.inputs is None:
                raise RuntimeError(
                    'backward through a graph that was already freed: pass '
                    'retain_graph=True to the first backward() to call it again')
            for p in node.parents:
                if p is not None and id(p) not in visited:
                    stack.append((p, False))
    order.reverse()
    return order


def backward(heads, head_grads=None, retain_graph=False, train_mode=True):
    """Compute gradients of ``heads`` with respect to every attached leaf."""
    from . import ops
    from .ops.registry import GradCtx
    if isinstance(heads, NDArray):
        heads = [heads]
        head_grads = None if head_grads is None else [head_grads]
    heads = list(heads)
    if head_grads is None:
        head_grads = [None] * len(heads)
    for h in heads:
        if h._node is None:
            raise RuntimeError(
                'cannot differentiate: this array was not computed from arrays with '
                'attached gradients inside autograd.record(); call x.attach_grad() '
                'and compute inside `with autograd.record():`')
    grads = {}
    for h, hg in zip(heads, head_grads):
        if hg is None:
            g = wrap(_onp.ones(h.shape, h.dtype))
        else:
            g = hg if isinstance(hg, NDArray) else wrap(_onp.asarray(hg, dtype=h.dtype))
            if g.shape != h.shape:
                from .errors import ShapeError
                raise ShapeError(f'backward: head gradient has shape {g.shape}, '
                                 f'expected {h.shape} (the shape of the head)')
        _accumulate(grads, h._node, g, ops)
    order = _topo_order([h._node for h in heads])
    with _scope(False, train_mode), _onp.errstate(all='ignore'):
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if isinstance(node, Leaf):
                _write_leaf(node, g)
                continue
            ctx = GradCtx(tuple(wrap(v) if isinstance(v, _onp.ndarray) else v for v in node.inputs),
                          wrap(node.out), node.attrs,
                          tuple(p is not None for p in node.parents))
            in_grads = node.op.grad(ctx, g)
            for p, ig in zip(node.parents, in_grads):
                if p is not None and ig is not None:
                    _accumulate(grads, p, ig, ops)
    if not retain_graph:
        for node in order:
            if isinstance(node, Node):
                node.inputs = node.out = None
                node.parents = ()


def _accumulate(grads, node, g, ops):
    key = id(node)
    prev = grads.get(key)
    grads[key] = g if prev is None else ops.add(prev, g)


def _write_leaf(leaf, g):
    if leaf.grad_req == 'null' or leaf.grad is None:
        return
    buf = leaf.grad._data
    if leaf.grad_req == 'add':
        buf += g._data
    else:
        buf[...] = g._data


def grad(heads, variables, head_grads=None, retain_graph=False, create_graph=False,
         train_mode=True):
    """Gradients of ``heads`` w.r.t. ``variables``, returned (not stored)."""
    if create_graph:
        raise NotImplementedError('autograd.grad(create_graph=True): higher-order '
                                  'gradients are not supported yet')
    if isinstance(variables, NDArray):
        variables = [variables]
    saved = []
    for v in variables:
        if not isinstance(v._node, Leaf):
            raise ValueError('autograd.grad: every variable must have called attach_grad()')
        saved.append((v._node.grad, v._node.grad_req))
        v._node.grad = wrap(_onp.zeros(v.shape, v.dtype))
        v._node.grad_req = 'write'
    try:
        backward(heads, head_grads, retain_graph, train_mode)
        return [v._node.grad for v in variables]
    finally:
        for v, (g, req) in zip(variables, saved):
            v._node.grad, v._node.grad_req = g, req
