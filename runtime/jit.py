"""The LLVM JIT: host target machine, O3 pass pipeline, MCJIT engines, the
disk cache of object code, and CPython ``METH_FASTCALL`` builtins around
compiled entries.

Object code is cached under ``TRACER_CACHE_DIR`` (default
``~/.cache/tracer``), keyed by a description of what the code depends on
(the optimized graph and the code generator's source digest), the
llvmlite/LLVM/numpy versions and the CPU name and features; each entry
carries a SHA-256 of its bytes, and a corrupt one is ignored with a warning
and recompiled.
"""
import ctypes
import hashlib
import os
import threading
import warnings

import llvmlite
import llvmlite.binding as llvm
import numpy as _onp

_lock = threading.Lock()
_MAGIC = b'tracer-object-1\n'        # cache file header: magic, sha256 of the object, object
_state = {}


def _init():
    if _state:
        return _state
    with _lock:
        if _state:
            return _state
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features()
        _state.update(cpu=cpu, features=dict(features), feature_string=features.flatten(),
                      omp=_load_openmp())
        _state['tm'] = target_machine()      # for passes and assembly; engines own their own
    return _state


def _load_openmp():
    """libgomp for GOMP_parallel; without it kernels run on one thread.
    Idle threads sleep (``OMP_WAIT_POLICY=passive`` unless the user set it):
    spinning threads make every parallel region very slow as soon as another
    process shares the cores, and only kernels with enough work are parallel."""
    os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
    for name in ('libgomp.so.1', 'libgomp.so'):
        try:
            llvm.load_library_permanently(name)     # makes its symbols visible to MCJIT
        except RuntimeError:
            continue
        if llvm.address_of_symbol('GOMP_parallel') is not None:
            return True
    return False


def target_machine():
    """A new host target machine (an MCJIT engine takes ownership of one)."""
    s = _state
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=s['cpu'], features=s['feature_string'], opt=3,
                                        jit=True)


def host():
    """(cpu name, feature dict, OpenMP available)."""
    s = _init()
    return s['cpu'], s['features'], s['omp']


def threads():
    n = os.environ.get('TRACER_NUM_THREADS')
    if n:
        return max(1, int(n))
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def optimize(ir_text):
    s = _init()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(s['tm'], pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def cache_dir():
    d = os.environ.get('TRACER_CACHE_DIR') or os.path.join(
        os.path.expanduser('~'), '.cache', 'tracer')
    return d


def cache_key(text):
    s = _init()
    h = hashlib.sha256()
    for part in (text, llvmlite.__version__, '.'.join(map(str, llvm.llvm_version_info)),
                 _onp.__version__, s['cpu'], s['feature_string']):
        h.update(part.encode())
        h.update(b'\0')
    return h.hexdigest()


class Engine:
    """A compiled module: MCJIT engine plus symbol lookup; keeps it alive."""

    def __init__(self, key_text, make_ir, use_cache=True):
        """``key_text`` identifies the code (the cache key); ``make_ir()`` builds
        the LLVM IR text, called only when the cache cannot supply the object."""
        s = _init()
        self.key = cache_key(key_text)
        self.asm = None
        self.from_cache = False
        self.module = None
        obj = self._cached_object() if use_cache else None
        if obj is not None:
            try:
                self._load(obj)
                self.from_cache = True
                return
            except Exception as e:                     # foreign: recompile
                warnings.warn(f'ignoring unusable cached object code {self._path()} '
                              f'(corrupt or from another version): {e}')
        self.module = optimize(make_ir())
        obj = s['tm'].emit_object(self.module)        # one code generation, also the cache entry
        if use_cache:
            self._store(obj)
        self._load(obj)

    def _load(self, obj):
        self.ee = llvm.create_mcjit_compiler(llvm.parse_assembly(''), target_machine())
        self.ee.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.ee.finalize_object()

    def _path(self):
        return os.path.join(cache_dir(), self.key[:2], self.key + '.o')

    def _cached_object(self):
        """The cached object code, if present and intact.  LLVM would crash on
        damaged object code, so every entry carries a SHA-256 of its bytes."""
        path = self._path()
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError:
            return None
        head, digest, obj = data[:len(_MAGIC)], data[len(_MAGIC):len(_MAGIC) + 32], \
            data[len(_MAGIC) + 32:]
        if head != _MAGIC or hashlib.sha256(obj).digest() != digest or \
                not obj.startswith(b'\x7fELF'):
            warnings.warn(f'ignoring unusable cached object code {path} (corrupt or from '
                          f'another version); recompiling')
            return None
        return obj

    def _store(self, data):
        path = self._path()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp'
            with open(tmp, 'wb') as f:
                f.write(_MAGIC + hashlib.sha256(data).digest() + data)
            os.replace(tmp, path)
        except OSError as e:
            warnings.warn(f'cannot write the compile cache {path}: {e}')

    def address(self, name):
        addr = self.ee.get_function_address(name)
        if not addr:
            raise RuntimeError(f'compiled module has no function {name!r}')
        return addr

    def assembly(self, ir_text):
        s = _init()
        if self.module is None:                    # loaded from the cache: optimize again
            self.module = optimize(ir_text)
        if self.asm is None:
            self.asm = s['tm'].emit_assembly(self.module)
        return self.asm


class _PyMethodDef(ctypes.Structure):
    _fields_ = [('ml_name', ctypes.c_char_p), ('ml_meth', ctypes.c_void_p),
                ('ml_flags', ctypes.c_int), ('ml_doc', ctypes.c_char_p)]


METH_FASTCALL = 0x80
_new_cfunction = ctypes.pythonapi.PyCFunction_NewEx
_new_cfunction.restype = ctypes.py_object
_new_cfunction.argtypes = (ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p)


def fastcall(engine, name, self_obj):
    """A builtin calling the entry ``name`` with ``self_obj`` as its ``self``.
    The method definition and engine are kept alive on the returned holder."""
    md = _PyMethodDef(name.encode(), engine.address(name), METH_FASTCALL, None)
    fn = _new_cfunction(ctypes.addressof(md), self_obj, None)
    return fn, md
