"""``SymbolBlock``: a block rebuilt from an exported graph, without the
Python class that produced it.  Its forward replays the graph through the
dispatcher, so it runs eagerly with autograd, and hybridizes like any block.

The graph was traced for particular input shapes.  Inputs may change the
first (batch) axis; an op whose recorded attributes depend on the batch
size (a reshape to a fixed shape, say) then fails with a ShapeError
naming the op, never a silent wrong answer.
"""
from ..graph import serialize
from ..graph.interpreter import replay
from .block import HybridBlock
from .parameter import Constant, Parameter


class SymbolBlock(HybridBlock):
    """Load with :meth:`imports`; call like the original block."""

    def __init__(self, graph, input_nodes, output_nodes, out_tree, params, updates):
        super().__init__()
        self._graph = graph
        self._input_nodes, self._output_nodes = list(input_nodes), list(output_nodes)
        self._out_tree = out_tree
        self._updates = list(updates)        # [(Parameter, node)]
        for name, p in params.items():
            self._reg_params[name] = p

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, device=None):
        """Rebuild a block from ``export``'s files (validated before anything is built)."""
        from runtime import export
        from ..device import as_device
        as_device(device)
        doc, graph, params, arrays = export.load(symbol_file, input_names, param_file)
        by_name = {}
        for key, (n, d) in params.items():
            kind, name = key.split(':', 1)
            p = by_name.get(name)
            if p is None:
                if d['op'] == 'constant':
                    p = Constant(arrays[key]) if key in arrays else \
                        Parameter(name, shape=d['shape'], dtype=d['dtype'], grad_req='null')
                    p.name = name
                else:
                    p = Parameter(name, shape=d['shape'], dtype=d['dtype'],
                                  grad_req='write' if kind == 'arg' else 'null')
                    if key in arrays:
                        p.set_data(arrays[key])
                by_name[name] = p
            d['param'] = p
        updates = [(by_name[name], n) for name, n in doc.get('updates', [])]
        out_tree = serialize.decode(doc['outputs'])
        return SymbolBlock(graph, [i['node'] for i in doc['inputs']], doc['output_nodes'],
                           out_tree, by_name, updates)

    def forward(self, *inputs):
        from runtime.hybrid import unflatten
        if len(inputs) != len(self._input_nodes):
            raise TypeError(f'SymbolBlock expects {len(self._input_nodes)} inputs, got '
                            f'{len(inputs)}')
        for x, n in zip(inputs, self._input_nodes):
            d = self._graph.nodes[n]
            shape = tuple(d['shape'])
            # the batch axis may differ from the traced one; every other axis must match
            if len(x.shape) != len(shape) or tuple(x.shape[1:]) != shape[1:]:
                from ..errors import ShapeError
                raise ShapeError(f"SymbolBlock input {d['name']!r} has shape {tuple(x.shape)}, "
                                 f"but the exported graph was traced for {shape} (only the "
                                 f"first axis may differ)")
        outs = replay(self._graph, self._input_nodes,
                      self._output_nodes + [n for _, n in self._updates], inputs,
                      lambda d: d['param'].data())
        k = len(self._output_nodes)
        for (p, _), v in zip(self._updates, outs[k:]):
            p.data()[...] = v
        return unflatten(self._out_tree, outs[:k])

    def __repr__(self):
        ins = ', '.join(self._graph.nodes[n]['name'] for n in self._input_nodes)
        return f'SymbolBlock({ins} -> {len(self._output_nodes)} output(s), ' \
               f'{self._graph.number_of_nodes()} nodes)'
