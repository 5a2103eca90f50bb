"""export() and SymbolBlock.imports(): round trips, a fresh process without
the model's class, and every kind of bad file."""
import json
import os
import subprocess
import sys

import numpy as onp
import pytest

import founding
from tracer import autograd, gluon, np
from tracer.errors import ParameterFileError, TracerError
from tracer.graph.serialize import GraphFileError


@pytest.fixture
def exported(tmp_path):
    net = founding.make_models()['NestMLP']
    net.hybridize()
    x = np.random.uniform(size=(2, 20))
    y = net(x).asnumpy()
    sym, params = net.export(str(tmp_path / 'nest'))
    return net, x, y, sym, params


def test_export_writes_documented_files(exported, tmp_path):
    net, x, y, sym, params = exported
    assert sym.endswith('nest-symbol.json') and params.endswith('nest-0000.params')
    doc = json.loads(open(sym).read())
    assert doc['format'] == 'tracer-symbol' and doc['version'] == 1
    assert [i['name'] for i in doc['inputs']] == ['data']
    with onp.load(params, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(f'arg:{k}' for k in net.collect_params())
        onp.testing.assert_array_equal(f['arg:net.0.weight'], net.net[0].weight.data().asnumpy())


def test_import_round_trip_hybridize_and_train(exported):
    net, x, y, sym, params = exported
    blk = gluon.SymbolBlock.imports(sym, ['data'], params)
    onp.testing.assert_allclose(blk(x).asnumpy(), y, rtol=1e-5, atol=1e-7)  # compiled vs eager: FMA, other order
    blk.hybridize()
    onp.testing.assert_allclose(blk(x).asnumpy(), y, rtol=1e-5, atol=1e-7)  # compiled vs eager: FMA, other order
    with autograd.record():
        blk(x).sum().backward()
    with autograd.record():
        net(x).sum().backward()
    for k, p in net.collect_params().items():
        onp.testing.assert_allclose(blk.collect_params()[k].grad().asnumpy(),
                                    p.grad().asnumpy(), rtol=1e-5, atol=1e-7)


def test_import_in_a_fresh_process_without_the_class(exported):
    net, x, y, sym, params = exported
    xf = sym.replace('-symbol.json', '-x.npy')
    onp.save(xf, x.asnumpy())
    code = f'''
import sys, numpy as onp
from tracer import gluon, np, autograd
blk = gluon.SymbolBlock.imports({sym!r}, ['data'], {params!r})
x = np.array(onp.load({xf!r}))
blk.hybridize()
y = blk(x)
with autograd.record():
    blk(x).sum().backward()
g = sum(float(onp.abs(p.grad().asnumpy()).sum()) for p in blk.collect_params().values())
assert 'founding' not in sys.modules
onp.save({xf!r}.replace('-x', '-y'), y.asnumpy())
print('grad', g)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=os.path.dirname(sym))
    assert out.returncode == 0, out.stderr
    onp.testing.assert_allclose(onp.load(xf.replace('-x', '-y')), y, rtol=1e-5, atol=1e-7)  # compiled vs eager: FMA, other order
    assert float(out.stdout.split()[-1]) > 0


def test_export_with_constant_and_shared_layer(tmp_path):
    class Shared(gluon.nn.Block):
        def __init__(self):
            super().__init__()
            self.c = gluon.Constant(np.random.uniform(size=(4, 4)))
            self.d = gluon.nn.Dense(4, in_units=4)

        def forward(self, x):
            return self.d(np.dot(self.d(x), self.c.data()))
    net = Shared()
    net.initialize()
    net.hybridize()
    x = np.random.uniform(size=(3, 4))
    y = net(x).asnumpy()
    sym, params = net.export(str(tmp_path / 'shared'), epoch=7)
    assert params.endswith('-0007.params')
    with onp.load(params) as f:
        assert sorted(f.files) == ['arg:d.bias', 'arg:d.weight', 'aux:c']
    blk = gluon.SymbolBlock.imports(sym, 'data', params)
    onp.testing.assert_allclose(blk(x).asnumpy(), y, rtol=1e-5, atol=1e-7)  # compiled vs eager: FMA, other order
    assert blk.collect_params()['c'].grad_req == 'null'


def test_export_needs_a_hybridized_forward_and_no_break(tmp_path):
    net = founding.make_models()['MLP']
    with pytest.raises(RuntimeError, match='hybridize'):
        net.export(str(tmp_path / 'm'))
    fixed = founding.make_models()['FixedHiddenMLP']
    fixed.hybridize()
    fixed(np.ones((2, 20)))
    with pytest.raises(TracerError, match=r'branches on array values at .*founding.py:\d+'):
        fixed.export(str(tmp_path / 'f'))

    class Reads(gluon.nn.Block):
        def forward(self, x):
            return x * float(x.sum())            # a value read: a graph break
    reads = Reads()
    reads.hybridize()
    with pytest.warns(UserWarning, match='graph break'):
        reads(np.ones((2,)))
    with pytest.raises(TracerError, match=r'graph break at .*test_export.py:\d+'):
        reads.export(str(tmp_path / 'r'))


def _rewrite(sym, tmp_path, name, fn):
    doc = json.loads(open(sym).read())
    fn(doc)
    path = str(tmp_path / name)
    with open(path, 'w') as f:
        json.dump(doc, f)
    return path


def test_bad_symbol_files(exported, tmp_path):
    net, x, y, sym, params = exported
    text = open(sym).read()
    trunc = tmp_path / 'trunc.json'
    trunc.write_text(text[: len(text) // 2])
    with pytest.raises(GraphFileError, match='truncated or not JSON'):
        gluon.SymbolBlock.imports(str(trunc), ['data'], params)
    notjson = tmp_path / 'x.json'
    notjson.write_bytes(b'\x00\xff binary')
    with pytest.raises(GraphFileError, match='not a valid symbol file'):
        gluon.SymbolBlock.imports(str(notjson), ['data'], params)
    newer = _rewrite(sym, tmp_path, 'newer.json', lambda d: d.update(version=99))
    with pytest.raises(GraphFileError, match='version 99, newer'):
        gluon.SymbolBlock.imports(newer, ['data'], params)

    def unknown(d):
        for node in d['graph']['nodes']:
            if node['op'] == 'relu':
                node['op'] = 'frobnicate'
    with pytest.raises(GraphFileError, match="unknown op 'frobnicate'"):
        gluon.SymbolBlock.imports(_rewrite(sym, tmp_path, 'unk.json', unknown), ['data'], params)

    def bad_shape(d):
        for node in d['graph']['nodes']:
            if node['op'] == 'matmul':
                node['shape'] = {'tuple': [2, 999]}
                break
    with pytest.raises(GraphFileError, match='does not check out|records shape'):
        gluon.SymbolBlock.imports(_rewrite(sym, tmp_path, 'shape.json', bad_shape), ['data'],
                                  params)
    with pytest.raises(GraphFileError, match=r"expects \['data'\]"):
        gluon.SymbolBlock.imports(sym, ['input0'], params)


def test_bad_param_files(exported, tmp_path):
    net, x, y, sym, params = exported
    with onp.load(params) as f:
        arrays = {k: f[k] for k in f.files}

    def write(name, arrs):
        path = str(tmp_path / name)
        with open(path, 'wb') as fh:
            onp.savez(fh, **arrs)
        return path
    missing = {k: v for k, v in arrays.items() if k != 'arg:dense.bias'}
    with pytest.raises(ParameterFileError, match='missing arrays'):
        gluon.SymbolBlock.imports(sym, ['data'], write('m', missing))
    with pytest.raises(ParameterFileError, match='unexpected arrays'):
        gluon.SymbolBlock.imports(sym, ['data'], write('e', dict(arrays, **{'arg:zzz': onp.ones(2)})))
    wrong = dict(arrays, **{'arg:dense.bias': onp.ones(3, dtype='float32')})
    with pytest.raises(ParameterFileError, match="'arg:dense.bias'"):
        gluon.SymbolBlock.imports(sym, ['data'], write('w', wrong))
    corrupt = tmp_path / 'c.params'
    corrupt.write_bytes(b'garbage')
    with pytest.raises(ParameterFileError, match='not a valid parameter file'):
        gluon.SymbolBlock.imports(sym, ['data'], str(corrupt))


def test_symbol_block_input_shape_is_checked(exported):
    net, x, y, sym, params = exported
    blk = gluon.SymbolBlock.imports(sym, ['data'], params)
    with pytest.raises(ValueError, match=r'\(2, 21\).*\(2, 20\)'):
        blk(np.ones((2, 21)))
    x5 = np.random.uniform(size=(5, 20))                   # another batch size works
    onp.testing.assert_allclose(blk(x5).asnumpy(), net(x5).asnumpy(), rtol=1e-5, atol=1e-7)  # compiled vs eager: FMA, other order
