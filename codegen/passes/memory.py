"""Memory planning over the fused groups.

Each group writes one value (its root).  Values returned to the caller
get their own buffers (a returned array is never overwritten by a later
call); every other value lives in a workspace buffer from its group until
its last reader's group.  Dead buffers are reused best-fit, and an
elementwise group writes in place over an input buffer of its size that
dies at that group.

A group that is only a reshape (not an output) gets no buffer: its value
aliases its input's storage (``('alias', value)``), whose buffer then lives
until the reshape's last reader.

Reports peak bytes before (every node's value kept, as the interpreter
does) and after (the plan's peak live workspace), and stores the plan in
``graph.graph['memory']`` and each root's ``buffer`` attribute.
"""
from tracer.graph.ir import SOURCE_OPS, nbytes, roots


def run(graph, ctx):
    groups = graph.graph.get('groups')
    if groups is None:
        return {'changed': False, 'skipped': 'needs fusion groups'}
    exits = set(roots(graph))
    order = [groups[i] for i in sorted(groups)]
    root_group = {g['root']: i for i, g in enumerate(order)}
    base = {}                                  # reshape value -> the value it aliases
    for g in order:
        r = g['root']
        if len(g['nodes']) == 1 and graph.nodes[r]['op'] == 'reshape' and r not in exits:
            (src,) = g['inputs']
            base[r] = base.get(src, src)
    last_use = {}
    for i, g in enumerate(order):
        for s in g['inputs']:
            s = base.get(s, s)
            if s in root_group:
                last_use[s] = i
    sizes, assign, inplace = [], {}, []
    free, live, owner = [], set(), {}        # owner: buffer -> value stored in it
    peak = 0

    def release(value):
        kind, b = assign.get(value, (None, None))
        if kind == 'workspace' and owner.get(b) == value:
            del owner[b]
            live.discard(b)
            free.append(b)

    for i, g in enumerate(order):
        r = g['root']
        size = nbytes(graph.nodes[r])
        if r in base:
            assign[r] = ('alias', base[r])
            continue
        if r in exits:
            assign[r] = ('output', None)
        else:
            buf = None
            if g['kind'] == 'elementwise':
                for s in g['inputs']:
                    kind, b = assign.get(s, (None, None))
                    if kind == 'workspace' and last_use.get(s) == i and owner.get(b) == s \
                            and sizes[b] == size:
                        buf = b
                        inplace.append((r, s))
                        break
            if buf is None:
                fits = [b for b in free if sizes[b] >= size]
                if fits:
                    buf = min(fits, key=lambda b: sizes[b])
                    free.remove(buf)
                else:
                    buf = len(sizes)
                    sizes.append(size)
            assign[r] = ('workspace', buf)
            owner[buf] = r
            live.add(buf)
        peak = max(peak, sum(sizes[b] for b in live))
        for s in g['inputs']:
            s = base.get(s, s)
            if last_use.get(s) == i and s in assign:
                release(s)
        if r not in last_use:            # written but never read by a later group
            release(r)
    for r, (kind, b) in assign.items():
        graph.nodes[r]['buffer'] = f'{kind}:{b}'
    before = sum(nbytes(d) for n, d in graph.nodes(data=True) if d['op'] not in SOURCE_OPS)
    graph.graph['memory'] = {'buffers': sizes, 'assign': assign, 'inplace': inplace,
                             'peak_before': before, 'peak_after': peak,
                             'workspace': sum(sizes)}
    return {'changed': True, 'peak_bytes_before': before, 'peak_bytes_after': peak,
            'workspace_bytes': sum(sizes), 'buffers': len(sizes), 'inplace': len(inplace),
            'bytes_saved': before - peak}
