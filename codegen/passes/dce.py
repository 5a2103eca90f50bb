"""Dead-code elimination: drop nodes no output or state update depends on."""
from tracer.graph.ir import prune


def run(graph, ctx):
    removed = prune(graph)
    return {'changed': bool(removed), 'removed': len(removed)}
