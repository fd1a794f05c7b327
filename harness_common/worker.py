"""The worker: the only process that imports kernel code.

It is started by harness_common.manager as `python -I` with a scrubbed
environment, pins itself to one CPU, installs the seccomp filter and the
oracle import blocker, imports the kernel modules by path, and then serves
commands from the supervisor over a pipe (see wire.py). It holds no
expected outputs and decides nothing: it constructs kernels, prepares fresh
buffers, times single calls, and sends outputs back.

A call is three steps so the supervisor can read this process's OS CPU
clock right around the timed region: `prep` (fresh inputs, filled outputs;
answered with a frame), then a single "g" byte that starts only the timed
call, answered with its 8-byte duration and the outputs (so all of a
call's work happens inside the window the supervisor measures), then
`finish` (the input, thread and oracle checks).
"""
import gc
import importlib.util
import os
import sys
import time
import traceback

import numpy as np

from . import cbuild, isa, sandbox, wire

_clock = time.perf_counter_ns
_ALIGN = 64


class Arena:
    """Fresh call buffers without fresh pages.

    Every call's inputs and outputs are carved at a random 64-byte-aligned
    offset of one pre-faulted block: a new address per call (so nothing can
    be keyed on a pointer), and no first-touch page faults inside the timed
    call (which on a VM cost more than some kernels do).
    """

    def __init__(self):
        self.block = np.zeros(0, np.uint8)
        self.rng = np.random.default_rng()

    def window(self, sizes):
        """One array view per size, non-overlapping, at a random place."""
        if not sizes:
            return []
        padded = [(n + _ALIGN - 1) // _ALIGN * _ALIGN for n in sizes]
        total = sum(padded) + _ALIGN * len(sizes)
        if len(self.block) < 4 * total:
            self.block = np.ones(4 * total + (1 << 20), np.uint8)   # ones: touch every page
        base = int(self.rng.integers(0, (len(self.block) - total) // _ALIGN)) * _ALIGN
        views, off = [], base
        for n, p in zip(sizes, padded):
            off += int(self.rng.integers(0, 2)) * _ALIGN                # vary the spacing too
            views.append(self.block[off:off + n])
            off += p
        return views


def _keep_freed_memory():
    """glibc malloc: never trim or mmap per allocation, so a kernel's own scratch
    memory is recycled warm, as in a long-running server, not faulted per call."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        libc.mallopt(-1, 1 << 30)        # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)        # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, cmd_fd, reply_fd):
        self.cmd_fd, self.reply_fd = cmd_fd, reply_fd
        self.isa = "scalar"
        self.classes = {}        # kernel name -> class
        self.objects = {}        # (kernel, combo) -> instance
        self.bases = {}          # (combo, key) -> array
        self.pending = None      # the prepared call: object, method, args, outputs, recipes
        self.arena = Arena()
        self.calls = 0

    def reply(self, header, arrays=None):
        wire.send(self.reply_fd, header, arrays)

    # ------------------------------------------------------------ commands

    def setup(self, msg, _arrays):
        """Pin, request AMX, then close the sandbox before any kernel code loads."""
        self.isa = msg["isa"]
        amx = "not requested"
        if self.isa == "amx":
            amx = isa.request_amx_permission()
        if msg.get("cpu") is not None:
            os.sched_setaffinity(0, {msg["cpu"]})
        cbuild.configure(cache_dir=msg["cache_dir"], offline=True,
                         compiler_id=msg["compiler_id"])
        _keep_freed_memory()
        sys.dont_write_bytecode = True          # nothing to write: the filter forbids it
        self.blocker = sandbox.block_imports(msg["blocked"], msg["root"])
        seccomp = sandbox.install_seccomp() or "on"
        gc.disable()
        self.reply({"ok": True, "amx": amx, "seccomp": seccomp})

    def load(self, msg, _arrays):
        for name, spec in msg["kernels"].items():
            loaded = self._load(name, spec)
            if isinstance(loaded, dict):
                return self.reply(loaded)
            self.classes[name] = loaded
        self.reply({"ok": True})

    def _load(self, name, spec):
        path = spec["path"]
        try:
            mod_spec = importlib.util.spec_from_file_location(f"kernel_{name}", path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001 - kernel code may raise anything
            return {"error": _kind(exc, "import"), "message": _describe(exc, path)}
        cls = getattr(module, spec["class"], None)
        if not isinstance(cls, type):
            return {"error": "api", "message": f"{path} defines no class {spec['class']}"}
        missing = [m for m in spec["methods"] if not callable(getattr(cls, m, None))]
        if missing:
            return {"error": "api", "message":
                    f"{path}: class {spec['class']} lacks method(s) {', '.join(missing)}"}
        return cls

    def construct(self, msg, arrays):
        kwargs = dict(msg["init"], **{k: np.array(v) for k, v in arrays.items()})
        t0 = _clock()
        try:
            obj = self.classes[msg["kernel"]](**kwargs, isa=self.isa)
        except BaseException as exc:  # noqa: BLE001
            return self.reply({"error": _kind(exc, "kernel"), "message": _describe(exc)})
        self.objects[(msg["kernel"], msg["combo"])] = obj
        self.reply({"ok": True, "ctor_ns": _clock() - t0})

    def workload(self, msg, arrays):
        for key, arr in arrays.items():
            self.bases[(msg["combo"], key)] = np.array(arr)
        self.reply({"ok": True})

    def drop(self, msg, _arrays):
        combo = msg["combo"]
        self.objects = {k: v for k, v in self.objects.items() if k[1] != combo}
        self.bases = {k: v for k, v in self.bases.items() if k[0] != combo}
        gc.collect()
        self.reply({"ok": True})

    def prep(self, msg, arrays):
        self.calls += 1
        if self.calls % 32 == 0:          # here, outside every window the supervisor audits
            gc.collect()
        args, recipes = {}, {}
        for name, spec in msg["args"].items():
            if "value" in spec:
                args[name] = spec["value"]
            else:
                recipes[name] = (spec, self._shape(msg["combo"], spec, arrays))
        outs = {n: (np.dtype(d), tuple(s), f) for n, (d, s, f) in msg["outputs"].items()}
        shapes = [ds for _, ds in recipes.values()] + [(d, s) for d, s, _ in outs.values()]
        views = iter(self.arena.window([int(np.prod(s, dtype=np.int64)) * d.itemsize
                                        for d, s in shapes]))
        for name, (spec, (dtype, shape)) in recipes.items():
            args[name] = next(views).view(dtype).reshape(shape)
            self._materialize(msg["combo"], spec, arrays, args[name])
        outputs = {}
        for name, (dtype, shape, fill) in outs.items():
            out = next(views).view(dtype).reshape(shape)
            out.fill(np.nan if fill == "nan" else fill)
            outputs[name] = out
        obj = None if msg.get("null") else self.objects[(msg["kernel"], msg["combo"])]
        self.pending = (obj, msg.get("method"), args, outputs,
                        (msg.get("combo"), {n: r[0] for n, r in recipes.items()}, arrays))
        self.reply({"ok": True})
        self.go()

    def _base(self, combo, spec, arrays):
        return arrays[spec["array"]] if "array" in spec else self.bases[(combo, spec["base"])]

    def _shape(self, combo, spec, arrays):
        src = self._base(combo, spec, arrays)
        rows = len(src) if spec.get("limit") is None else min(len(src), spec["limit"])
        return src.dtype, (rows, *src.shape[1:])

    def _materialize(self, combo, spec, arrays, out):
        """Write an argument's content into `out`: a copy of the sent or base array,
        or, for fresh content, its rows permuted and columns sign-flipped."""
        src = self._base(combo, spec, arrays)
        if "perm" in spec:
            np.take(src, arrays[spec["perm"]][:len(out)], axis=0, out=out)
            out *= arrays[spec["signs"]]
        else:
            out[...] = src[:len(out)]

    def go(self):
        """The timed call: one byte in, eight bytes out, nothing else in the window."""
        obj, method, args, outputs, _ = self.pending
        fn = None if obj is None else getattr(obj, method)
        if os.read(self.cmd_fd, 1) != b"g":
            raise RuntimeError("expected the go byte")
        t0 = _clock()
        try:
            if fn is not None:
                fn(**args, **outputs)
        except BaseException as exc:  # noqa: BLE001
            os.write(self.reply_fd, (-1).to_bytes(8, "little", signed=True))
            return self.reply({"error": _kind(exc, "kernel"), "message": _describe(exc)})
        t1 = _clock()
        os.write(self.reply_fd, (t1 - t0).to_bytes(8, "little", signed=True))
        self.reply({"ok": True}, outputs)     # outputs now: no work can follow the reply

    def finish(self, msg, _arrays):
        _, _, args, outputs, (combo, recipes, arrays) = self.pending
        self.pending = None
        modified = []
        if msg.get("verify"):
            for name, spec in recipes.items():
                expected = np.empty_like(args[name])
                self._materialize(combo, spec, arrays, expected)
                if not np.array_equal(args[name], expected):
                    modified.append(name)
        threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
        self.reply({"ok": True, "inputs_modified": modified, "threads": threads,
                    "oracle": self.blocker.breach()})

    # ------------------------------------------------------------ loop

    def serve(self):
        handlers = {"setup": self.setup, "load": self.load, "construct": self.construct,
                    "workload": self.workload, "drop": self.drop, "prep": self.prep,
                    "finish": self.finish}
        while True:
            try:
                msg, arrays = wire.recv(self.cmd_fd)
            except wire.WireError:
                return 0                      # the supervisor went away
            if msg["cmd"] == "bye":
                return 0
            try:
                handlers[msg["cmd"]](msg, arrays)
            except BaseException:  # noqa: BLE001 - a harness bug: report it, then stop
                self.reply({"error": "internal", "message": traceback.format_exc()})
                return 1


def _kind(exc, default):
    """'policy' when kernel code hit the oracle blocker, else `default`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, sandbox.OracleImportError):
            return "policy"
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return default


def _describe(exc, path=None):
    """The exception and its innermost frames, pointing at kernel code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen")][-3:]
    where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames)
    head = f"{type(exc).__name__}: {exc}"
    if path and isinstance(exc, SyntaxError):
        head = f"{type(exc).__name__}: {exc.msg} ({os.path.basename(path)}:{exc.lineno})"
    return f"{head}" + (f" [{where}]" if where else "")


def main(argv):
    return Worker(int(argv[0]), int(argv[1])).serve()
