"""codegen: graph-to-graph passes (constant folding, dedupe/CSE, dead code,
algebraic simplification, fusion, memory planning) and the lowering of the
optimized graph to LLVM IR with llvmlite.

Not implemented yet (issues 5 and 6).  It will read each op's lowering kind
from the registry (``tracer.ops.Kind``) and must not know about Blocks or
Parameters.
"""
