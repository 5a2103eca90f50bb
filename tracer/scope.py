"""The stack of blocks currently running ``forward``.

Blocks push themselves on entry so that errors (and, when tracing, graph
nodes) can name *where* they happen: the path of child names from the
outermost running block, such as ``0.net.1``.  Names are resolved lazily,
only when a path is actually needed, so the per-call cost is a list append.
"""
_stack = []


def push(block):
    _stack.append(block)


def pop():
    _stack.pop()


def _child_name(parent, child):
    for name, ref in parent._children.items():
        if ref() is child:
            return name
    return type(child).__name__


def current_path():
    """Dotted path of the innermost running block ('' outside any block)."""
    if not _stack:
        return ''
    names = [_child_name(p, c) for p, c in zip(_stack, _stack[1:])]
    return '.'.join(names)


def describe():
    """'block 0.net.1 (Dense)' for messages, or '' outside any block."""
    if not _stack:
        return ''
    path = current_path() or '<root>'
    return f"block '{path}' ({type(_stack[-1]).__name__})"


def where():
    """' in block ...' suffix for error messages."""
    d = describe()
    return f' in {d}' if d else ''
