"The notebooks' own tests: every notebook in nbs/ runs top to bottom (cells flagged `slow` are skipped)."
import subprocess

from conftest import ROOT


def test_notebooks_run():
    cp = subprocess.run(['nbdev_test', '--n_workers', '2'], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert cp.returncode == 0, cp.stdout[-5000:] + cp.stderr[-5000:]
