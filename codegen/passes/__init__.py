"""Graph-to-graph passes.  Each is ``run(graph, ctx) -> stats`` on a copy
of the graph; the pipeline below is the whole optimizer, in order.

``optimize(graph, ctx)`` returns the optimized graph and one
:class:`PassReport` per pass (what it changed and how long it took).  A
pass listed in ``ctx.disabled`` (or in ``TRACER_DISABLE_PASSES``, comma
separated) is skipped; with ``ctx.verify`` (or ``TRACER_VERIFY=1``) the IR
invariants are checked after every pass and a failure names the pass.
"""
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from tracer.graph.ir import GraphError, check, copy_graph

from . import cse, dce, fold, fusion, memory, simplify

# (name, pass): folding and local rewrites first, repeated with dedupe until
# nothing changes; then dead code, fusion grouping and memory planning.
CLEANUP = (('fold', fold.run), ('simplify', simplify.run), ('cse', cse.run))
PIPELINE = CLEANUP + (('dce', dce.run), ('fusion', fusion.run), ('memory', memory.run))
PASS_NAMES = tuple(name for name, _ in PIPELINE)
MAX_ROUNDS = 4


@dataclass
class PassContext:
    """What passes may know beyond the graph (never Blocks or Parameters)."""
    freeze: bool = False                       # fold trainable parameters too
    param_value: Optional[Callable] = None     # node attrs -> array, for folding
    disabled: frozenset = frozenset()
    verify: bool = field(default_factory=lambda: os.environ.get('TRACER_VERIFY') == '1')


@dataclass
class PassReport:
    name: str
    changed: bool
    stats: dict
    seconds: float

    def __str__(self):
        shown = ', '.join(f'{k}={v}' for k, v in self.stats.items() if k != 'changed')
        return f'{self.name:<9} {self.seconds * 1e3:7.2f} ms  {shown}'


class PassError(GraphError):
    """A pass left the graph inconsistent."""


def disabled_from_env():
    names = {n.strip() for n in os.environ.get('TRACER_DISABLE_PASSES', '').split(',') if n.strip()}
    unknown = names - set(PASS_NAMES)
    if unknown:
        raise ValueError(f'TRACER_DISABLE_PASSES names unknown passes {sorted(unknown)}; '
                         f'passes: {", ".join(PASS_NAMES)}')
    return frozenset(names)


def optimize(graph, ctx=None):
    ctx = ctx or PassContext()
    disabled = set(ctx.disabled) | disabled_from_env()
    g = copy_graph(graph)
    reports, ran = [], []

    def step(name, fn):
        if name in disabled:
            return False
        t = time.perf_counter()
        stats = fn(g, ctx)
        reports.append(PassReport(name, stats.get('changed', False), stats,
                                  time.perf_counter() - t))
        ran.append(name)
        if ctx.verify:
            try:
                check(g, PassError)
            except PassError as e:
                raise PassError(f'after pass {name!r} (passes so far: {ran}): {e}') from None
        return stats.get('changed', False)

    for _ in range(MAX_ROUNDS):
        if not any([step(name, fn) for name, fn in CLEANUP]):
            break
    for name, fn in PIPELINE[len(CLEANUP):]:
        step(name, fn)
    for name in sorted(disabled):
        reports.append(PassReport(name, False, {'disabled': True}, 0.0))
    return g, reports
