"""Export a hybridized block's graph and parameters, and load them back
without the block's Python class (``gluon.SymbolBlock.imports``).

Files: ``<path>-symbol.json`` (format in docs/export-format.md) and
``<path>-<epoch:04d>.params`` (NumPy ``.npz``: ``arg:<name>`` for trained
parameters, ``aux:<name>`` for constants and running statistics; a shared
parameter is stored once).  Nothing is unpickled.
"""
import json
import zipfile

import numpy as _onp

import tracer
from tracer.errors import ParameterFileError, TracerError
from tracer.graph import serialize
from tracer.graph.serialize import GraphFileError


def _latest_graph_entry(block):
    entries = list(block._cached.values())
    if not entries:
        raise RuntimeError('Please first call block.hybridize() and then run forward with this '
                           'block at least once before calling export.')
    for entry in reversed(entries):
        if entry.kind == 'graph':
            return entry
    last = entries[-1]
    if last.kind == 'variants':
        lines = sorted(set(s for e in last.entries for s in e.guard_sources))
        raise TracerError(f'cannot export {type(block).__name__}: its forward branches on array '
                          f'values at {", ".join(lines)}, so no single graph computes it (the '
                          f'compiled graphs are specialized to the branches taken). Export a '
                          f'child block without such branches.')
    brk = last.brk
    raise TracerError(f'cannot export {type(block).__name__}: its forward does not trace to '
                      f'one graph ({brk}). Remove the value-dependent Python at that line, or '
                      f'export a child block that traces fully.')


def export_block(block, path, epoch=0):
    entry = _latest_graph_entry(block)
    names = {id(p): n for n, p in block.collect_params().items()}
    for node, d in entry.traced.nodes(data=True):
        if 'param' in d:
            names.setdefault(id(d['param']), f"{d['param'].name}{node}")
    graph = entry.traced            # the importer re-optimizes
    doc = {
        'format': serialize.FORMAT,
        'version': serialize.VERSION,
        'producer': f'tracer {tracer.__version__}',
        'inputs': [{'node': n, 'name': graph.nodes[n]['name']} for n in graph.graph['inputs']],
        'outputs': serialize.encode(entry.out_tree),
        'output_nodes': list(graph.graph['outputs']),
        'updates': [[names[id(p)], n] for (p, _), n in zip(entry.updates,
                                                           graph.graph['updates'])],
        'graph': serialize.graph_to_json(graph, names),
    }
    sym_file = f'{path}-symbol.json'
    with open(sym_file, 'w') as f:
        json.dump(doc, f)
    arrays = {}
    traced_params = {id(d['param']): d['param'] for _, d in graph.nodes(data=True) if 'param' in d}
    for p in traced_params.values():
        kind = 'arg' if p.grad_req != 'null' else 'aux'
        arrays[f'{kind}:{names[id(p)]}'] = p.data()._data
    param_file = f'{path}-{epoch:04d}.params'
    with open(param_file, 'wb') as f:
        _onp.savez(f, **arrays)
    return sym_file, param_file


def read_symbol_file(symbol_file):
    try:
        with open(symbol_file) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise GraphFileError(f'{symbol_file!r} is not a valid symbol file (truncated or not '
                             f'JSON: {e})') from None
    except UnicodeDecodeError:
        raise GraphFileError(f'{symbol_file!r} is not a valid symbol file (not text)') from None
    if not isinstance(doc, dict) or doc.get('format') != serialize.FORMAT:
        raise GraphFileError(f'{symbol_file!r} is not a tracer symbol file (no '
                             f'"format": "{serialize.FORMAT}")')
    version = doc.get('version')
    if not isinstance(version, int) or version > serialize.VERSION:
        raise GraphFileError(f'{symbol_file!r} has format version {version!r}, newer than this '
                             f'tracer reads (up to {serialize.VERSION}); upgrade tracer')
    for key in ('inputs', 'outputs', 'output_nodes', 'graph'):
        if key not in doc:
            raise GraphFileError(f'{symbol_file!r} has no {key!r} entry')
    graph = serialize.graph_from_json(doc['graph'])
    serialize.verify(graph)
    nodes = set(graph.nodes)
    for n in [i['node'] for i in doc['inputs']] + list(doc['output_nodes']) + \
            [n for _, n in doc.get('updates', [])]:
        if n not in nodes:
            raise GraphFileError(f'{symbol_file!r} refers to node {n}, which is not in the graph')
    return doc, graph


def read_param_file(param_file):
    try:
        with _onp.load(param_file, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ParameterFileError(f'{param_file!r} is not a valid parameter file (a NumPy .npz '
                                 f'archive): {e}') from None


def load(symbol_file, input_names, param_file=None):
    """Everything SymbolBlock needs, fully validated before anything is built."""
    doc, graph = read_symbol_file(symbol_file)
    if isinstance(input_names, str):
        input_names = [input_names]
    expected = [i['name'] for i in doc['inputs']]
    if list(input_names) != expected:
        raise GraphFileError(f'input names {list(input_names)} do not match the symbol file, '
                             f'which expects {expected}')
    params = {}
    for n, d in graph.nodes(data=True):
        if d['op'] in ('param', 'constant') and 'value' not in d:
            if 'name' not in d or d.get('kind') not in ('arg', 'aux'):
                raise GraphFileError(f'parameter node {n} has no name or kind')
            params[f"{d['kind']}:{d['name']}"] = (n, d)
    arrays = {}
    if param_file is not None:
        arrays = read_param_file(param_file)
        missing = sorted(set(params) - set(arrays))
        extra = sorted(set(arrays) - set(params))
        problems = []
        if missing:
            problems.append(f'missing arrays {missing}')
        if extra:
            problems.append(f'unexpected arrays {extra}')
        for key, (n, d) in params.items():
            if key in arrays and (tuple(arrays[key].shape) != tuple(d['shape']) or
                                  arrays[key].dtype.name != d['dtype']):
                problems.append(f"{key!r} is {arrays[key].dtype.name}{list(arrays[key].shape)} "
                                f"in the file but the graph needs {d['dtype']}{list(d['shape'])}")
        if problems:
            raise ParameterFileError(f'{param_file!r} does not match {symbol_file!r}: '
                                     + '; '.join(problems))
    return doc, graph, params, arrays
