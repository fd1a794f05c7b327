"""The worker: the only process that runs kernel code.

The supervisor (harness_common.process) starts it as `python -I` with a
scrubbed environment. Before any kernel code exists in it, the worker pins
itself to one CPU, maps the supervisor's arena, reads the kernel's sources,
drops every privilege (an unprivileged user of its own, no capabilities,
not dumpable, no new privileges) and installs the seccomp filter. If any of
that fails, it says so and runs no kernel code.

It holds no clock, no expected output and no verdict. It constructs kernels,
builds array views over arena offsets the supervisor chose (`prep`), and on
one "g" byte runs the prepared calls and answers with one byte. Everything
the supervisor judges (CPU time, outputs, inputs, threads) it reads itself,
while this process is stopped.
"""
import ctypes
import gc
import importlib.machinery
import importlib.util
import mmap
import os
import sys
import traceback

import numpy as np

from . import calls, cbuild, isa, sandbox, wire

# Modules kernels.py may import, loaded while files are still readable: after
# the privilege drop the interpreter's own directories may be out of reach.
_PRELOAD = ("math", "functools", "itertools", "collections", "dataclasses", "typing", "enum",
            "_cffi_backend", "numpy.linalg", "numpy.random", "numpy.fft")

GO, FRAME = b"g", b"f"          # what the supervisor sends: the go byte, or a command frame
OK, FAILED = b"\x01", b"\x00"   # what the go byte is answered with


def _keep_freed_memory():
    """glibc malloc: never trim or mmap per allocation, so a kernel's own scratch
    memory is recycled warm, as in a long-running server, not faulted per call."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-1, 1 << 30)        # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)        # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, cmd_fd, reply_fd, arena_fd, refused_fd=None):
        self.cmd_fd, self.reply_fd, self.arena_fd = cmd_fd, reply_fd, arena_fd
        self.refused_fd = refused_fd     # where the SIGSYS handler names a refused call
        self.isa = "scalar"
        self.arena = None
        self.sources = {}        # kernel name -> (path, source bytes, class, methods)
        self.classes = {}        # kernel name -> class
        self.objects = {}        # (kernel, combo) -> instance
        self.pads = {}           # combo -> the random blocks allocated before its construction
        self.pending = []        # the prepared calls: (bound method, kwargs)
        self.blocker = None
        self.supervisor = os.getppid()

    def reply(self, header, arrays=None):
        wire.send(self.reply_fd, header, arrays)

    # ------------------------------------------------------------ setup

    def setup(self, msg, _arrays):
        """Everything that needs privileges or files, then the sandbox, then nothing else."""
        self.isa = msg["isa"]
        amx = isa.request_amx_permission() if self.isa == "amx" else "not requested"
        if msg.get("cpu") is not None:
            os.sched_setaffinity(0, {msg["cpu"]})
        _keep_freed_memory()
        size = msg["arena_size"]
        self.arena = np.frombuffer(mmap.mmap(self.arena_fd, size), np.uint8)
        self.arena[::4096] = 0       # fault every page in writable before any call
        preload = {}
        for name, spec in msg["kernels"].items():
            with open(spec["py"], "rb") as f:
                self.sources[name] = (spec["py"], f.read(), spec["class"], spec["methods"])
            preload[spec["py"]] = (os.open(spec["so"], os.O_RDONLY), spec["module"])
        cbuild.use_prebuilt(preload)
        for mod in _PRELOAD:
            __import__(mod)
        sys.dont_write_bytecode = True          # nothing to write: the filter forbids it
        problems = sandbox.confine(msg["uid"], msg["blocked"], msg["root"], self.supervisor,
                                   self.refused_fd)
        if problems and msg["require_sandbox"]:
            self.sources.clear()               # nothing left to load: no kernel code runs here
            cbuild.use_prebuilt({})
            return self.reply({"error": "sandbox", "message": "; ".join(problems)})
        self.blocker = sandbox.blocker()
        # Collections run only in `drop`, between combos. Freezing what the imports made
        # keeps each one to the objects made since (about 15 ms less per drop, 300 drops
        # a trial): rounds the timing budget buys instead of heap walks.
        gc.freeze()
        gc.disable()
        self.reply({"ok": True, "amx": amx,
                    "sandbox": "off: " + "; ".join(problems) if problems else "on"})

    def load(self, msg, _arrays):
        for name, (path, source, cls_name, methods) in self.sources.items():
            loaded = self._load(name, path, source, cls_name, methods)
            if isinstance(loaded, dict):
                return self.reply(loaded)
            self.classes[name] = loaded
        self.reply({"ok": True})

    def _load(self, name, path, source, cls_name, methods):
        try:
            spec = importlib.util.spec_from_loader(f"kernel_{name}", loader=None, origin=path)
            module = importlib.util.module_from_spec(spec)
            module.__file__ = path
            sys.modules[spec.name] = module
            exec(compile(source, path, "exec"), module.__dict__)
        except BaseException as exc:  # noqa: BLE001 - kernel code may raise anything
            return self._failure(exc, "import", path)
        cls = getattr(module, cls_name, None)
        if not isinstance(cls, type):
            return {"error": "api", "message": f"{path} defines no class {cls_name}"}
        missing = [m for m in methods if not callable(getattr(cls, m, None))]
        if missing:
            return {"error": "api", "message":
                    f"{path}: class {cls_name} lacks method(s) {', '.join(missing)}"}
        return cls

    # ------------------------------------------------------------ kernels

    def construct(self, msg, arrays):
        # The kernel's arrays come from the heap (no mmap: _keep_freed_memory), so where
        # they land follows the process's history, and two workers' histories differ a
        # little (their kernel's path and module name): the same offsets per combo in
        # every trial, and 16 bytes of offset moved campq_encode's speed by up to 9%.
        # Blocks of sizes the supervisor drew from its secret source come first: they
        # take free chunks and the heap's top, so the kernel's arrays land somewhere
        # new in every worker. Layout luck becomes variance across worker pairs, which
        # the interval sees, not a bias between the two kernels.
        pad = [np.empty(int(n), np.uint8) for n in msg.get("pad", ())]
        kwargs = dict(msg["init"], **{k: np.array(v) for k, v in arrays.items()})
        try:
            obj = self.classes[msg["kernel"]](**kwargs, isa=self.isa)
        except BaseException as exc:  # noqa: BLE001
            return self.reply(self._failure(exc, "kernel"))
        self.objects[(msg["kernel"], msg["combo"])] = obj
        self.pads[msg["combo"]] = pad
        self.reply({"ok": True})

    def drop(self, msg, _arrays):
        combo = msg["combo"]
        self.objects = {k: v for k, v in self.objects.items() if k[1] != combo}
        self.pads.pop(combo, None)
        gc.collect()
        self.reply({"ok": True})

    def _view(self, spec):
        n = int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize
        off = spec["offset"]
        return self.arena[off:off + n].view(spec["dtype"]).reshape(spec["shape"])

    def prep(self, msg, _arrays):
        """Views for the next sample's calls; the content arrives after this reply."""
        obj = None if msg.get("null") else self.objects[(msg["kernel"], msg["combo"])]
        self.pending = []
        for call in msg["calls"]:
            kwargs = {n: self._arg(a) for n, a in call["args"].items()}
            outs = {n: self._view(o) for n, o in call["outputs"].items()}
            result = outs.pop(call["returns"]) if call["returns"] else None
            kwargs.update(outs)
            fn = None if obj is None else getattr(obj, call["method"])
            self.pending.append((fn, kwargs, result, call["method"]))
        self.reply({"ok": True})

    def _arg(self, spec):
        if "value" in spec:
            return spec["value"]
        if "list" in spec:
            return [self._view(s) for s in spec["list"]]
        return self._view(spec)

    def go(self):
        """The measured window: the prepared calls back to back, then one byte."""
        try:
            for fn, kwargs, result, method in self.pending:
                if fn is not None:
                    calls.invoke(fn, kwargs, result, method)
        except BaseException as exc:  # noqa: BLE001
            os.write(self.reply_fd, FAILED)
            return self.reply(self._failure(exc, "kernel"))
        os.write(self.reply_fd, OK)

    def _failure(self, exc, default, path=None):
        """The reply for an exception from kernel code: a policy violation when the
        code also reached for the oracle (or displaced the blocker), else `default`."""
        breach = self.blocker.breach() if self.blocker else None
        if breach:
            return {"error": "policy", "message": f"{breach} ({_describe(exc, path)})"}
        return {"error": default, "message": _describe(exc, path)}

    def status(self, _msg, _arrays):
        """Whether kernel code reached for the oracle since the last question."""
        self.reply({"ok": True, "oracle": self.blocker.breach() if self.blocker else None})

    # ------------------------------------------------------------ loop

    def serve(self):
        handlers = {"setup": self.setup, "load": self.load, "construct": self.construct,
                    "drop": self.drop, "prep": self.prep, "status": self.status}
        while True:
            try:
                first = os.read(self.cmd_fd, 1)
                if first == GO:
                    self.go()
                    continue
                if first != FRAME:
                    return 0                  # the supervisor went away
                msg, arrays = wire.recv(self.cmd_fd)
            except wire.WireError:
                return 0
            if msg["cmd"] == "bye":
                return 0
            try:
                handlers[msg["cmd"]](msg, arrays)
            except BaseException:  # noqa: BLE001 - a harness bug: report it, then stop
                self.reply({"error": "internal", "message": traceback.format_exc()})
                return 1


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
    return Worker(*map(int, argv[:4])).serve()
