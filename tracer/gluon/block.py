"""``Block`` and ``HybridBlock``: the module abstraction.

Assigning a Block or Parameter to an attribute registers it; the tree of
children is walked for parameters, initialization, saving, hooks and mode
switches.  ``_children`` maps names to *weak references* (call them to get
the block), as in Gluon 2: containers keep their own strong references.
"""
import collections
import re
import weakref

import numpy as _onp

from .. import autograd, config, scope
from ..device import as_device
from ..errors import ParameterFileError, ShapeError
from ..ndarray import NDArray
from ..graph import trace as _trace
from .parameter import Parameter

_ag_state = autograd.state

# Bumped by train()/eval(): part of every hybridized signature, so a mode
# change retraces instead of reusing a graph built for the other mode.
mode_version = [0]
_hybrid = None      # runtime.hybrid, imported on the first hybridized call


def _runtime():
    global _hybrid
    if _hybrid is None:
        from runtime import hybrid
        _hybrid = hybrid
    return _hybrid


class HookHandle:
    """Returned by ``register_forward_hook``; ``detach()`` removes the hook."""

    def __init__(self, hooks, key):
        self._hooks, self._key = weakref.ref(hooks), key

    def detach(self):
        hooks = self._hooks()
        if hooks is not None:
            hooks.pop(self._key, None)

    remove = detach

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()


def _indent(text, n):
    pad = ' ' * n
    return text.replace('\n', '\n' + pad)


class Block:
    """Base class of every layer and model.

    Subclass it, create children and parameters in ``__init__`` and write
    ``forward``; ``forward`` is plain Python (loops, branches, NumPy-style
    code).

    >>> class MLP(nn.Block):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Dense(256, activation='relu')
    ...         self.out = nn.Dense(10)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x))
    """

    def __init__(self, prefix=None, params=None):
        object.__setattr__(self, '_children', collections.OrderedDict())
        object.__setattr__(self, '_reg_params', collections.OrderedDict())
        object.__setattr__(self, '_forward_hooks', collections.OrderedDict())
        object.__setattr__(self, '_forward_pre_hooks', collections.OrderedDict())
        object.__setattr__(self, '_hook_id', 0)
        object.__setattr__(self, '_mode', None)     # None: follow autograd.is_training()
        object.__setattr__(self, '_active', False)  # hybridize() flag
        object.__setattr__(self, '_fullgraph', False)
        object.__setattr__(self, '_freeze', False)
        object.__setattr__(self, '_disabled_passes', frozenset())
        object.__setattr__(self, '_cached', collections.OrderedDict())  # signature -> entry
        object.__setattr__(self, '_fast', {})     # shapes/dtypes/mode -> native call path
        object.__setattr__(self, '_last', None)   # the last (shape, dtype, mode, fast) used
        object.__setattr__(self, '_recompiles', 0)

    # ---------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if '_children' not in self.__dict__:
            raise RuntimeError(f'{type(self).__name__}.__init__ must call super().__init__() '
                               f'before assigning attributes')
        existing = self.__dict__.get(name)
        if existing is not None and isinstance(existing, (Block, Parameter)) and \
                not isinstance(value, type(existing)) and value is not None:
            raise TypeError(f'changing attribute {name!r} of {type(self).__name__} from '
                            f'{type(existing).__name__} to {type(value).__name__} is not allowed')
        if isinstance(value, Block):
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            self._reg_params[name] = value
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Block) for v in value):
            for i, v in enumerate(value):
                self.register_child(v, f'{name}.{i}')
        object.__setattr__(self, name, value)

    def register_child(self, block, name=None):
        """Register ``block`` as a child (stored as a weak reference)."""
        if not isinstance(block, Block):
            raise TypeError(f'register_child expects a Block, got {type(block).__name__}')
        if name is None:
            name = str(len(self._children))
        self._children[name] = weakref.ref(block)
        return block

    def register_parameter(self, name, param):
        """PyTorch-style: register ``param`` under ``name``."""
        setattr(self, name, param)

    def _live_children(self):
        for name, ref in self._children.items():
            child = ref()
            if child is not None:
                yield name, child

    # ---------------------------------------------------------------- calling
    def __call__(self, *args, **kwargs):
        if self._active and not kwargs and _trace.current is None and not config._debug_eager \
                and not _ag_state.recording and not self._forward_pre_hooks \
                and not self._forward_hooks:
            return _runtime().call_fast(self, args)
        for hook in tuple(self._forward_pre_hooks.values()):
            hook(self, args)
        if self._active and _trace.current is None and not config._debug_eager:
            out = _runtime().call(self, args, kwargs)
        else:
            scope.push(self)
            try:
                out = self.forward(*args, **kwargs)
            finally:
                scope.pop()
        for hook in tuple(self._forward_hooks.values()):
            hook(self, args, out)
        return out

    def forward(self, *args):
        raise NotImplementedError(f'{type(self).__name__} must implement forward()')

    def _next_hook_id(self):
        object.__setattr__(self, '_hook_id', self._hook_id + 1)
        return self._hook_id

    def register_forward_pre_hook(self, hook):
        """``hook(block, inputs)`` runs before each forward."""
        key = self._next_hook_id()
        self._forward_pre_hooks[key] = hook
        return HookHandle(self._forward_pre_hooks, key)

    def register_forward_hook(self, hook):
        """``hook(block, inputs, output)`` runs after each forward."""
        key = self._next_hook_id()
        self._forward_hooks[key] = hook
        return HookHandle(self._forward_hooks, key)

    # ---------------------------------------------------------------- parameters
    def _walk(self, prefix='', seen=None):
        """Yield (structural prefix, block) over the tree, each block once."""
        seen = set() if seen is None else seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self._live_children():
            yield from child._walk(f'{prefix}{name}.', seen)

    def collect_params(self, select=None):
        """Dict of structural name -> Parameter; a shared parameter appears once.

        ``select`` is a regular expression matched against the names
        (``'.*weight'``).
        """
        out, seen = collections.OrderedDict(), set()
        pattern = re.compile(select) if isinstance(select, str) else None
        if select is not None and pattern is None:
            pattern = re.compile('|'.join(select))
        for prefix, block in self._walk():
            for name, p in block._reg_params.items():
                full = prefix + name
                if id(p) in seen or (pattern is not None and not pattern.match(full)):
                    continue
                seen.add(id(p))
                out[full] = p
        return out

    def parameters(self):
        """Every unique Parameter (Constants included; see ``grad_req``)."""
        return iter(self.collect_params().values())

    def named_parameters(self, prefix=''):
        for name, p in self.collect_params().items():
            yield prefix + name, p

    def initialize(self, init=None, device=None, verbose=False, force_reinit=False, ctx=None):
        """Initialize every parameter of the tree (``init`` defaults to Uniform(0.07)).

        A parameter's own initializer (``bias_initializer='zeros'``...) wins
        over ``init``; parameters with unknown shapes initialize on the first
        forward.
        """
        from .. import init as _init
        default = _init.create(init) or _init.Uniform()
        for p in self.collect_params().values():
            p.initialize(None, device if device is not None else ctx, default, force_reinit)
        return self

    def zero_grad(self):
        for p in self.collect_params().values():
            p.zero_grad()

    def share_parameters(self, shared):
        """Use the Parameters in ``shared`` (name -> Parameter) for the matching names."""
        if not isinstance(shared, dict):
            raise TypeError(f'share_parameters expects a dict of name -> Parameter, '
                            f'got {type(shared).__name__}')
        for prefix, block in self._walk():
            for name in list(block._reg_params):
                full = prefix + name
                if full in shared:
                    block._reg_params[name] = shared[full]
                    if name in block.__dict__:
                        object.__setattr__(block, name, shared[full])
        self._clear_cache()
        return self

    # ---------------------------------------------------------------- state
    def state_dict(self):
        """Flat dict of structural name -> array (shared parameters once)."""
        return collections.OrderedDict(
            (name, p.data()) for name, p in self.collect_params().items())

    def load_state_dict(self, state_dict, strict=True):
        """Load arrays by name; with ``strict`` missing or extra names are errors."""
        self._assign(dict(state_dict), allow_missing=not strict, ignore_extra=not strict,
                     source='state_dict')

    def save_parameters(self, filename, deduplicate=True):
        """Save every parameter to ``filename`` as a NumPy ``.npz`` archive."""
        arrays = {}
        for name, p in self.collect_params().items():
            arrays[name] = p.data()._data
        with open(filename, 'wb') as f:
            _onp.savez(f, **arrays)

    def load_parameters(self, filename, device=None, allow_missing=False, ignore_extra=False,
                        cast_dtype=False, dtype_source='current', ctx=None):
        """Load a file written by ``save_parameters``; never unpickles."""
        import zipfile
        as_device(device if device is not None else ctx)
        try:
            with _onp.load(filename, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
            raise ParameterFileError(f'{filename!r} is not a valid parameter file (a NumPy .npz '
                                     f'archive written by save_parameters): {e}') from None
        self._assign(arrays, allow_missing, ignore_extra, source=repr(filename),
                     cast_dtype=cast_dtype)

    def _assign(self, arrays, allow_missing, ignore_extra, source, cast_dtype=True):
        params = self.collect_params()
        missing = [n for n in params if n not in arrays]
        extra = [n for n in arrays if n not in params]
        problems = []
        if missing and not allow_missing:
            problems.append(f'missing parameters {missing}')
        if extra and not ignore_extra:
            problems.append(f'unexpected parameters {extra} (not in {type(self).__name__}; '
                            f'use ignore_extra=True to skip them)')
        values = {}
        for name, p in params.items():
            if name not in arrays:
                continue
            a = arrays[name]
            a = a._data if isinstance(a, NDArray) else _onp.asarray(a)
            shape = p.shape
            if shape is not None and (len(shape) != a.ndim or any(
                    s != -1 and s != d for s, d in zip(shape, a.shape))):
                problems.append(f'parameter {name!r} has shape {tuple(shape)} in the model but '
                                f'{a.shape} in {source}')
            if a.dtype.kind not in 'fiub':
                problems.append(f'parameter {name!r} has unsupported dtype {a.dtype} in {source}')
            values[name] = a
        if problems:
            raise ParameterFileError(f'cannot load {source} into {type(self).__name__}: '
                                     + '; '.join(problems))
        for name, a in values.items():       # validated: now nothing can fail half-way
            params[name].set_data(a.astype(params[name].dtype, copy=False))

    # ---------------------------------------------------------------- misc
    def apply(self, fn):
        """Call ``fn(block)`` on every block of the tree (children first)."""
        for _, child in self._live_children():
            child.apply(fn)
        fn(self)
        return self

    def cast(self, dtype):
        for _, block in self._walk():
            for p in block._reg_params.values():
                p.cast(dtype)
        self._clear_cache()
        return self

    def _clear_cache(self):
        for _, block in self._walk():
            block._cached.clear()
            block._fast.clear()
            object.__setattr__(block, '_last', None)
            object.__setattr__(block, '_recompiles', 0)

    def to(self, device):
        """Move to ``device``; only the CPU exists, so anything else raises."""
        as_device(device)
        return self

    reset_device = reset_ctx = to

    def train(self, mode=True):
        """PyTorch-style: force training behaviour (Dropout, BatchNorm) in the tree."""
        for _, block in self._walk():
            object.__setattr__(block, '_mode', bool(mode))
        mode_version[0] += 1
        return self

    def eval(self):
        return self.train(False)

    @property
    def training(self):
        return autograd.is_training() if self._mode is None else self._mode

    def hybridize(self, active=True, fullgraph=False, freeze=False, disable_passes=(), **kwargs):
        """Compile this block (and its children) on the next call.

        The first call with a new input signature (shapes, dtypes, nesting
        of the inputs, training mode, whether autograd records) runs
        ``forward`` on symbolic arrays and records a graph; later calls
        with that signature run the graph without running ``forward``.

        Tracing rules: ``forward`` may use any Python, loops and branches
        included, as long as it does not need an array's *value*.  Reading
        a value (``if x.sum() > 0``, ``float(x)``, ``.item()``,
        ``.asnumpy()``) is a *graph break*: this block's ``forward`` then
        runs eagerly (with a warning naming the line) while its children
        stay compiled, and a ``Sequential`` compiles the runs of children
        around the one that breaks.  ``fullgraph=True`` turns a break into
        an error.  ``hybridize(active=False)`` (or ``tracer.debug_eager()``)
        runs ``forward`` eagerly again, so ``print`` and breakpoints work.

        The graph is then optimized (``codegen.passes``: constant folding,
        simplification, dedupe, dead code, fusion grouping, memory
        planning).  ``freeze=True`` is for inference: parameter values are
        folded into the graph too (a parameter changed later through
        ``set_data``, a Trainer or ``load_parameters`` is detected and the
        graph re-traced, with a warning).  ``disable_passes=('cse',)``
        (or ``TRACER_DISABLE_PASSES=cse``) skips passes for debugging.

        Graphs currently run on the reference interpreter (NumPy);
        native code generation comes next.
        """
        from codegen.passes import PASS_NAMES
        unknown = set(disable_passes) - set(PASS_NAMES)
        if unknown:
            raise ValueError(f'unknown passes {sorted(unknown)}; passes: {", ".join(PASS_NAMES)}')
        for _, block in self._walk():
            object.__setattr__(block, '_active', bool(active))
            object.__setattr__(block, '_fullgraph', bool(fullgraph))
            object.__setattr__(block, '_freeze', bool(freeze))
            object.__setattr__(block, '_disabled_passes', frozenset(disable_passes))
        self._clear_cache()
        return self

    def export(self, path, epoch=0):
        """Write ``path-symbol.json`` (the graph) and ``path-%04d.params``.

        The block must have run a hybridized forward; the files load with
        ``gluon.SymbolBlock.imports`` without this Python class.
        """
        from runtime import export
        return export.export_block(self, path, epoch)

    def graph_dot(self, *inputs):
        """Graphviz DOT text of the graph(s) ``hybridize`` builds for ``inputs``."""
        from ..explain import explain
        return explain(self, *inputs).dot()

    def summary(self, *inputs):
        """Print (and return) each layer's output shape and parameter count."""
        from .summary import summarize
        text = summarize(self, inputs)
        print(text)
        return text

    def __repr__(self):
        children = list(self._live_children())
        if not children:
            return f'{type(self).__name__}()'
        body = '\n'.join(f'  ({name}): {_indent(repr(child), 2)}' for name, child in children)
        return f'{type(self).__name__}(\n{body}\n)'


class HybridBlock(Block):
    """A Block that may be compiled with ``hybridize()``.

    Write ``forward(self, x)`` (Gluon 2 / PyTorch style) or Gluon 1's
    ``hybrid_forward(self, F, x, **params)``, where ``F`` is the array
    namespace and ``params`` are the block's own parameters' arrays.
    """

    def forward(self, *args):
        if type(self).hybrid_forward is HybridBlock.hybrid_forward:
            raise NotImplementedError(f'{type(self).__name__} must implement forward() '
                                      f'or hybrid_forward()')
        from . import F
        params = {name: p.data() for name, p in self._reg_params.items()}
        return self.hybrid_forward(F, *args, **params)

    def hybrid_forward(self, F, x, *args, **kwargs):
        raise NotImplementedError

    def infer_shape(self, *args):
        """Override to set deferred parameter shapes from the inputs."""

