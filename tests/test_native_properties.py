"""Property test: random graphs compiled to native code give the reference
interpreter's results (float32, rtol 1e-5: fused loops use FMA and vector
reductions, and exp/tanh/erf... are the documented approximations)."""
import warnings

import numpy as onp
from hypothesis import HealthCheck, given, settings

from codegen.passes import PassContext, optimize
from runtime.executable import Executable
from test_pass_properties import build, programs
from tracer.graph.interpreter import run_graph


def compiled_matches(g, xs):
    h, _ = optimize(g, PassContext())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        exe = Executable(h, 'prop', use_cache=False)
    ref = run_graph(g, g.graph['inputs'], g.graph['outputs'], xs)
    got = exe.run(xs)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert a.shape == b.shape and a.dtype == b.dtype
        onp.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-6, equal_nan=True)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_compiled_random_graphs_match_the_interpreter(program):
    g, xs = build(*program)
    compiled_matches(g, xs)
