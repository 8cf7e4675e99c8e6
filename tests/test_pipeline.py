"The DVC pipeline on a fresh copy of the project, and the parameter file."
import hashlib
import json
import shutil
import subprocess

import yaml

from accident_nbdev.core import DEFAULT_PARAMS, load_params
from conftest import ROOT


def _run(cmd, cwd, timeout=900):
    cp = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert cp.returncode == 0, f'{" ".join(cmd)} failed\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}'
    return cp


def test_params_yaml_matches_the_defaults():
    data = yaml.safe_load((ROOT/'params.yaml').read_text())
    def keys(d, pre=''):
        return {pre + k for k in d} | {x for k, v in d.items() if isinstance(v, dict) for x in keys(v, pre + k + '.')}
    assert keys(data) == keys(DEFAULT_PARAMS)
    assert load_params(ROOT/'params.yaml') == DEFAULT_PARAMS     # the shipped file states the defaults


def test_training_notebook_parameters_are_the_defaults():
    """`papermill nbs/03_train.ipynb out.ipynb -p epochs 20` (no `accident train` to inject the rest) trains the
    default model: the notebook's parameters cell states `DEFAULT_PARAMS['train']`."""
    nb = json.loads((ROOT/'nbs'/'03_train.ipynb').read_text())
    cells = [c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert len(cells) == 1
    values = {}
    exec(''.join(cells[0]['source']), {}, values)
    shared = set(values) & set(DEFAULT_PARAMS['train'])
    assert shared >= {'arch', 'freeze', 'frames', 'epochs', 'lr', 'bs', 'sampler', 'context', 'context_frames'}
    assert {k: values[k] for k in shared} == {k: DEFAULT_PARAMS['train'][k] for k in shared}


def test_dvc_repro_push_pull_on_a_fresh_copy(tmp_path):
    proj = tmp_path/'proj'
    proj.mkdir()
    for f in ('dvc.yaml', 'params.yaml', '.dvcignore'): shutil.copy(ROOT/f, proj/f)
    (proj/'nbs').mkdir()
    shutil.copy(ROOT/'nbs'/'03_train.ipynb', proj/'nbs')                       # the train stage runs it
    shutil.copytree(ROOT/'accident_nbdev', proj/'accident_nbdev', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copytree(ROOT/'.dvc', proj/'.dvc', ignore=shutil.ignore_patterns('cache', 'tmp'))
    params = yaml.safe_load((proj/'params.yaml').read_text())
    params['synth'].update(n_videos=16, resolutions=[[160, 120]], frame_rates=[8], duration=[8.0, 8.0])
    params['prepare'].update(size=32, target_fps=4.0, clip_seconds=2.0)
    params['probe']['folds'] = 2
    params['train'].update(arch='small', freeze=0, frames=4, epochs=1, bs=8, cached=False)
    params['export']['quantize'] = False
    params['generalise']['n_videos'] = 6
    (proj/'params.yaml').write_text(yaml.safe_dump(params))
    _run(['git', 'init', '-q'], proj)
    _run(['dvc', 'repro'], proj)
    for f in ('data/raw/annotations.csv', 'data/prepared/clips.csv', 'reports/probe.json', 'models/best.pth',
              'reports/train.ipynb', 'reports/eval/metrics.json', 'models/serve/model.onnx', 'models/serve/model_card.json'):
        assert (proj/f).exists(), f
    clips = proj/'data/prepared/clips.csv'                                        # one copy on disk (.dvc/config)
    assert clips.stat().st_nlink == 2 and not clips.stat().st_mode & 0o222, 'tracked data: a read-only link into the cache'
    gen = json.loads((proj/'reports/generalise.json').read_text())               # the generalisation check ran
    assert gen['n_videos'] == 6 and gen['video']['n'] == 6 and 0 <= gen['video']['auroc'] <= 1, gen
    digest = lambda d: {hashlib.sha1(f.read_bytes()).hexdigest() for f in (proj/d).rglob('*.mp4')}
    assert not digest('data/fresh') & digest('data/raw')                          # fresh videos, not training ones
    assert 'up to date' in _run(['dvc', 'status'], proj).stdout
    _run(['dvc', 'push'], proj)
    shutil.rmtree(proj/'data'); shutil.rmtree(proj/'.dvc'/'cache')
    _run(['dvc', 'pull'], proj)
    assert (proj/'data/prepared/clips.csv').exists() and any((proj/'data/raw').rglob('*.mp4'))
    assert (proj/'models/serve/model.onnx').exists()
    assert 'up to date' in _run(['dvc', 'status'], proj).stdout
    # the README's experiment commands: `dvc exp run -S train.epochs=...` branches from a commit, `dvc exp show` compares
    for key, value in (('user.name', 'accident-ci'), ('user.email', 'ci@localhost')):
        _run(['git', 'config', key, value], proj)
    _run(['git', 'add', '-A'], proj)
    _run(['git', 'commit', '-q', '-m', 'one epoch'], proj)
    _run(['dvc', 'exp', 'run', '-S', 'train.epochs=2', '--name', 'two-epochs'], proj)
    shown = json.loads(_run(['dvc', 'exp', 'show', '--json'], proj).stdout)
    exps = {r['name']: r['data'] for row in shown for e in row.get('experiments') or [] for r in e['revs']}
    assert exps['two-epochs']['params']['params.yaml']['data']['train']['epochs'] == 2, exps
    assert exps['two-epochs']['metrics']['dvclive/metrics.json']['data']['step'] == 1      # dvclive logged epochs 0 and 1
    base = next(row['data'] for row in shown if row['rev'] != 'workspace')
    assert base['metrics']['dvclive/metrics.json']['data']['step'] == 0                    # the commit's run: one epoch
