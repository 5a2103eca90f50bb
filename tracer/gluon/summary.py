"""``Block.summary``: output shape and parameter count per layer, in the
layout of Gluon's summary table."""
from .. import autograd


def _shape(out):
    if hasattr(out, 'shape'):
        return str(tuple(out.shape))
    if isinstance(out, (list, tuple)):
        return ', '.join(_shape(o) for o in out)
    return type(out).__name__


def summarize(block, inputs):
    rows, handles, seen = [], [], set()
    counts = {}

    def hook(b, args, out):
        kind = type(b).__name__
        counts[kind] = counts.get(kind, 0) + 1
        own = 0
        for p in b._reg_params.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                own += p.size
        rows.append((f'{kind}-{counts[kind]}', _shape(out), own))

    for _, b in block._walk():
        handles.append(b.register_forward_hook(hook))
    try:
        with autograd.pause():
            block(*inputs)
    finally:
        for h in handles:
            h.detach()
    params = block.collect_params().values()
    total = sum(p.size for p in params)
    trainable = sum(p.size for p in params if p.grad_req != 'null')
    line, thick = '-' * 80, '=' * 80
    out = [line, f'{"Layer (type)":>30}{"Output Shape":>35}{"Param #":>15}', thick,
           f'{"Input":>30}{_shape(inputs[0]) if len(inputs) == 1 else _shape(inputs):>35}{0:>15}']
    out += [f'{name:>30}{shape:>35}{n:>15}' for name, shape, n in rows]
    out += [thick, f'Total params: {total}', f'Trainable params: {trainable}',
            f'Non-trainable params: {total - trainable}', line]
    return '\n'.join(out)
