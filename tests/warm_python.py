"""A warm interpreter for running snippets "as in a fresh interpreter" without paying torch's import each time.

One child process imports the heavy third-party libraries once (torch, gymnasium, tensordict, TorchRL,
Stable-Baselines3 — never perceptspec, whose registries and allow-list must start empty for each snippet), then forks
once per snippet: the fork changes to the snippet's directory, puts it first on `sys.path` (as `PYTHONPATH` would),
runs the source as `__main__` with its output in a file, and exits with the snippet's status, skipping the teardown of
the imported modules (over a second with torch loaded; snippets register no `atexit` work). A snippet therefore sees a
process of its own, as `python -c SOURCE` gives it, in a fraction of the time.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

#: what the child imports once; a library missing from the venv is left out (the snippet that needs it will say so)
WARM_IMPORTS = ("torch", "gymnasium", "numpy", "yaml", "tensordict", "tensordict.nn", "torchrl.envs",
                "torchrl.collectors", "torchrl.modules", "torchrl.objectives", "stable_baselines3")

SERVER = """
import importlib, json, os, sys, traceback
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdin = open(0, closefd=False)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(request["cwd"])
        sys.path.insert(0, request["cwd"])
        os.environ.update(request["env"])
        sys.argv = ["-c"]
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        code = 0
        try:
            exec(compile(request["source"], "<string>", "exec"), namespace)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (exit.code is not None)
            if not isinstance(exit.code, (int, type(None))):
                print(exit.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


class Result(NamedTuple):
    returncode: int
    output: str  # stdout and stderr, interleaved as written


class WarmPython:
    """The child described above; `run` is `subprocess.run([python, "-c", source], cwd=cwd)` in effect."""

    def __init__(self) -> None:
        self._child = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(WARM_IMPORTS)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._read(timeout=300) == "ready"

    def _read(self, timeout: float) -> str:
        assert self._child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._child.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.close()
                raise TimeoutError(f"the warm interpreter gave no answer in {timeout} s")
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the warm interpreter exited with {self._child.wait()}")
        return line.strip()

    def run(self, source: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> Result:
        assert self._child.stdin is not None
        log = cwd.with_name(cwd.name + ".output")
        request = {"source": source, "cwd": str(cwd), "env": env, "log": str(log)}
        self._child.stdin.write(json.dumps(request) + "\n")
        self._child.stdin.flush()
        returncode = json.loads(self._read(timeout))
        output = log.read_text()
        log.unlink()
        return Result(int(returncode), output)

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        for stream in (self._child.stdin, self._child.stdout):
            if stream is not None:
                stream.close()
