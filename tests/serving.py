"Helpers for the serving tests: start the real `accident serve` / `accident demo` as a subprocess on a free port."
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/'test-artifacts'

# What the serving container does not carry: the server must run without importing any of it.
NO_TRAINING_STACK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'torchvision', 'fastai', 'timm', 'papermill', 'dvc', 'dvclive'}:
            raise ImportError(f'{name} is not part of the serving image')
sys.meta_path.insert(0, _Block())
from accident_nbdev.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@contextlib.contextmanager
def running(args: list[str], ready_path: str, env: dict | None = None, timeout: float = 120, log: Path | None = None):
    """Run `accident ARGS --port P` (under the serving-image import blocker) until the block ends; yields
    (base URL, process). Waits until GET `ready_path` answers 200."""
    port = free_port()
    log = log or (ARTIFACTS/f'server-{port}.log')
    log.parent.mkdir(parents=True, exist_ok=True)
    e = {**os.environ, 'PYTHONUNBUFFERED': '1', 'GRADIO_ANALYTICS_ENABLED': 'False', 'HF_HUB_OFFLINE': '1', **(env or {})}
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-c', NO_TRAINING_STACK, *args, '--port', str(port)], stdout=out,
                                stderr=subprocess.STDOUT, env=e, cwd=ROOT)
        url = f'http://127.0.0.1:{port}'
        try:
            t0 = time.monotonic()
            while True:
                if proc.poll() is not None: raise AssertionError(f'server exited {proc.returncode}:\n{log.read_text()[-3000:]}')
                try:
                    if httpx.get(url + ready_path, timeout=2).status_code == 200: break
                except httpx.HTTPError: pass
                if time.monotonic() - t0 > timeout: raise AssertionError(f'server not ready in {timeout} s:\n{log.read_text()[-3000:]}')
                time.sleep(0.3)
            yield url, proc
        finally:
            proc.terminate()
            try: proc.wait(15)
            except subprocess.TimeoutExpired: proc.kill(); proc.wait()
