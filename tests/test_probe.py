"The shortcut probe on a generated dataset: appearance and motion energy alone must not solve it."
import json

from conftest import run_accident, write_params


def test_generated_data_has_no_shortcut(tmp_path):
    # the default video formats and clip parameters, fewer videos than the default dataset
    params = write_params(tmp_path/'params.yaml', synth=dict(workers=2), prepare=dict(workers=2))
    run_accident('--params', params, 'synth', tmp_path/'raw', '--n-videos', 80, '--seed', 2026, '--layout', 'folders')
    run_accident('--params', params, 'prepare', tmp_path/'raw', '--out', tmp_path/'prepared')
    cp = run_accident('--params', params, 'probe', tmp_path/'prepared', '--strict')
    res = json.loads((tmp_path/'prepared'/'probe.json').read_text())
    print(cp.stdout)
    assert res['n_videos'] == 80 and res['n_accident'] == 40
    for clf, auroc in res['auroc']['appearance'].items(): assert auroc <= 0.70, (clf, res)
    for clf, auroc in res['auroc']['motion'].items(): assert auroc <= 0.80, (clf, res)
    assert 'ok' in cp.stdout and 'SHORTCUT' not in cp.stdout
