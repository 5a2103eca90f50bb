"""runtime: the LLVM JIT engine and host target machine, compiled
executables and their per-call path, caches (in memory per input
signature, on disk per graph hash), eager fallback around graph breaks,
and export/import of compiled graphs.

Not implemented yet (issues 4 and 6).  ``tracer.gluon`` will reach it only
through one narrow entry imported lazily on the first hybridized call.
"""
