"Shared helpers for the integration tests: run the real `accident` command, build small datasets once."
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Small, fast videos for tests: the generator's own defaults are tuned for the real dataset.
SMALL_SYNTH = dict(resolutions=[[160, 120]], frame_rates=[8], duration=[8.0, 8.0], workers=2)
SMALL_PREPARE = dict(size=32, target_fps=4.0, clip_seconds=2.0, stride_seconds=1.0, workers=2)


def run_accident(*args, cwd=None, check=True, timeout=900) -> subprocess.CompletedProcess:
    "Run the installed `accident` command; on failure with check=True, show its output."
    cp = subprocess.run(['accident', *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, PYTHONUNBUFFERED='1'))
    if check and cp.returncode != 0:
        raise AssertionError(f'accident {" ".join(map(str, args))} exited {cp.returncode}\n{cp.stdout}\n{cp.stderr}')
    return cp


def write_params(path: Path, **sections) -> Path:
    "A params.yaml holding only the given overrides (the rest keeps its defaults)."
    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.fixture(scope='session')
def small_params(tmp_path_factory) -> Path:
    return write_params(tmp_path_factory.mktemp('params')/'params.yaml', synth=SMALL_SYNTH, prepare=SMALL_PREPARE)


@pytest.fixture(scope='session')
def synth_tudat(tmp_path_factory, small_params) -> Path:
    "Eight small synthetic videos in TU-DAT's layout, made once per test session."
    out = tmp_path_factory.mktemp('synth')/'tudat'
    run_accident('--params', small_params, 'synth', out, '--n-videos', 8, '--seed', 3, '--layout', 'tudat')
    return out
