"""Optimization targets: one package per kernel, all with the same files.

`python -m targets.<name>.run_experiment` imports this package first, before
numpy or any harness code, which makes it the place to start the supervisor
clean: a trial refuses to run with variables that load foreign code (the
code they load has already run) and re-runs itself under `python -I`, with
the workspace root last on sys.path, so that nothing the agent puts in the
working directory (a numpy.py, say) can shadow a library.
"""
import os
import sys

# The supervisor pins itself off the timing CPU; multi-threaded BLAS would
# then fight over one core (and spin on the timing CPU otherwise).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_FOREIGN_CODE = ("LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME",
                 "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE")
_BOOT = ("import runpy, sys\n"
         "root, module = sys.argv[1], sys.argv[2]\n"
         "del sys.argv[1:3]\n"
         "sys.path.append(root)\n"
         "try:\n"
         "    runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
         "except Exception as exc:\n"      # a broken target.toml fails at import: one line, exit 1
         "    if type(exc).__name__ != 'ConfigError':\n"
         "        raise\n"
         "    print(f'error: {exc}', file=sys.stderr)\n"
         "    sys.exit(1)\n")


def _clean_start():
    found = [v for v in _FOREIGN_CODE if os.environ.get(v)]
    if found:
        print(f"error: refusing to run a trial with {', '.join(found)} set: it loads code from "
              f"outside the workspace's harness into the supervisor; unset it and rerun",
              file=sys.stderr)
        raise SystemExit(5)
    module = sys.orig_argv[sys.orig_argv.index("-m") + 1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.execve(sys.executable, [sys.executable, "-I", "-c", _BOOT, root, module, *sys.argv[1:]], env)


# argv[0] is "-m" while `python -m` is still locating the module; only then.
if sys.argv[:1] == ["-m"] and not sys.flags.isolated and "-m" in getattr(sys, "orig_argv", ()):
    _clean_start()
