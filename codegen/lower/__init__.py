"""Lowering of optimized graphs to LLVM IR (see codegen/lower/module.py)."""
