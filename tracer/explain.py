"""``tracer.explain(block, *inputs)``: what hybridize did with a block for
these inputs -- the graph, graph breaks with their source lines, the
signatures traced so far, and (as they land) passes and kernels."""
from collections import Counter

from .graph.dot import to_dot


class Explanation:
    """Attributes: ``graph`` (the optimized networkx graph, or None if the
    block broke; node attribute ``group`` is its fusion group),
    ``traced_graph`` (before passes), ``graphs`` (every compiled unit,
    segments included), ``breaks``, ``signatures``, ``passes`` (one report
    per pass), ``groups`` (fusion groups), ``memory`` (the buffer plan with
    peak bytes before and after), ``kernels`` (one dict per native kernel:
    ``name``, ``group``, ``kind``, ``ir``, ``asm``) and ``native_error`` (why
    the graph runs on the interpreter, if it does).  ``str()`` is a report."""

    def __init__(self, block, entry, key, signatures):
        self.block = block
        self.entry = entry
        self.signatures = signatures
        self.graphs = []
        self.breaks = []
        self.guards = []     # branches on values the compiled graphs are specialized to
        self._collect(block, entry)
        if entry.kind == 'variants':
            entry = entry.entries[0]           # the most recently used specialization
        is_graph = entry.kind == 'graph'
        self.graph = entry.graph if is_graph else None
        self.traced_graph = entry.traced if is_graph else None
        self.passes = list(entry.reports) if is_graph else []
        self.groups = entry.graph.graph.get('groups', {}) if is_graph else {}
        self.memory = entry.graph.graph.get('memory') if is_graph else None
        native = entry.native if is_graph else None
        self.native_error = entry.native_error if is_graph else None
        self.kernels = native.kernels() if native is not None else []

    def _collect(self, owner, entry):
        if entry.kind == 'variants':
            for e in entry.entries:
                self._collect(owner, e)
            return
        if entry.kind == 'graph':
            self.graphs.append((type(owner).__name__, entry.graph))
            for src, value in zip(entry.guard_sources, entry.guard_values):
                self.guards.append({'source': src, 'value': value,
                                    'block': type(owner).__name__})
            return
        if entry.kind == 'eager':      # a segmented entry's break is its child's
            self.breaks.append({'source': entry.brk.source, 'reason': entry.brk.reason,
                                'scope': entry.brk.scope, 'block': type(owner).__name__})
        for step in getattr(entry, 'plan', None) or []:
            for sub in step._cached.values():
                self._collect(getattr(step, 'owner', step), sub)
        if entry.kind == 'eager':            # its children ran their own calls
            for _, child in owner._live_children():
                for sub in child._cached.values():
                    self._collect(child, sub)

    def dot(self):
        """DOT text of every compiled graph (one digraph each)."""
        return ''.join(to_dot(g, name) for name, g in self.graphs)

    def __str__(self):
        out = [f'{type(self.block).__name__}: {self.entry.kind} '
               f'({len(self.signatures)} signature(s) traced)']
        for i, sig in enumerate(self.signatures):
            out.append(f'  signature {i}: {sig}')
        for b in self.breaks:
            where = f" in block '{b['scope']}'" if b['scope'] else ''
            out.append(f"  graph break at {b['source']}{where} ({b['block']}): {b['reason']}")
        if self.guards:
            out.append(f'  {len(self.graphs)} graph(s) specialized on branches (guards checked '
                       f'on every call):')
            for g in self.guards:
                out.append(f"    guard at {g['source']} ({g['block']}): branch taken = "
                           f"{g['value']}")
        if self.kernels:
            out.append(f'  native code: {len(self.kernels)} kernel(s)')
            for k in self.kernels:
                vec = 'zmm' if 'zmm' in k['asm'] else 'ymm' if 'ymm' in k['asm'] else 'scalar'
                out.append(f"    {k['name']:<24} group {k['group']:<3} {k['kind']:<13} "
                           f"{len(k['asm'].splitlines()):5} asm lines, {vec}")
        elif self.native_error:
            out.append(f'  interpreter (no native code: {self.native_error})')
        if self.passes:
            out.append('  passes:')
            out += [f'    {r}' for r in self.passes]
        for name, g in self.graphs:
            groups = g.graph.get('groups', {})
            if groups:
                out.append(f'  fusion groups of {name}:')
                for i, grp in groups.items():
                    ops_ = ' -> '.join(g.nodes[n]['op'] for n in grp['nodes'])
                    out.append(f"    group {i:<3} {grp['kind']:<11} kernel {grp['kernel'][:8]}  "
                               f"{ops_}")
            ops = Counter(d['op'] for _, d in g.nodes(data=True))
            out.append(f'  graph of {name}: {g.number_of_nodes()} nodes '
                       f'({", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))})')
            for n, d in g.nodes(data=True):
                args = ', '.join(f'#{u}' for u, _ in sorted(g.in_edges(n), key=lambda e: e[0]))
                scope = d.get('scope') or '-'
                grp = d.get('group', '-')
                out.append(f"    #{n:<4} {d['op']:<14} {str(list(d['shape'])):<16} "
                           f"{d['dtype']:<8} g{grp!s:<4} {scope:<14} {args:<16} "
                           f"{d.get('source', '')}")
        return '\n'.join(out)

    __repr__ = __str__


def _describe_signature(key):
    tree, specs, (training, recording, _) = key
    arrays = ', '.join(f'{dt}{list(shape)}' for shape, dt in specs)
    return f'({arrays}) training={training} recording={recording}'


def explain(block, *inputs, **kwargs):
    """Hybridize ``block`` if needed, run it on ``inputs`` and explain the result."""
    from runtime import hybrid
    from . import autograd
    if not block._active:
        block.hybridize()
    with autograd.pause():
        key, _ = hybrid.signature(inputs, kwargs)
        if key not in block._cached:
            block(*inputs, **kwargs)
    entry = block._cached[key]
    return Explanation(block, entry, key, [_describe_signature(k) for k in block._cached])
