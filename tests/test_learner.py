"""The learner end to end through the real `accident` command on a small generated dataset: training through
Papermill, evaluation, ONNX export, prediction; and the bad-input messages."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SMALL_PREPARE, SMALL_SYNTH, run_accident, write_params

SMALL_TRAIN = dict(arch='small', freeze=0, frames=4, epochs=2, bs=8, patience=2, cached=False)


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    "A small project folder (params.yaml + the training notebook), run through synth -> ... -> export."
    proj = tmp_path_factory.mktemp('proj')
    write_params(proj/'params.yaml', synth=SMALL_SYNTH, prepare=SMALL_PREPARE, train=SMALL_TRAIN)
    (proj/'nbs').mkdir()
    shutil.copy(ROOT/'nbs'/'03_train.ipynb', proj/'nbs')
    run_accident('synth', 'data/raw', '--n-videos', 16, '--seed', 5, cwd=proj)
    run_accident('prepare', 'data/raw', '--out', 'data/prepared', cwd=proj)
    (proj/'train_stdout.txt').write_text(run_accident('train', cwd=proj).stdout)
    run_accident('evaluate', cwd=proj)
    run_accident('export', cwd=proj)
    return proj


def test_training_ran_through_papermill(project):
    nb = json.loads((project/'reports'/'train.ipynb').read_text())
    assert 'papermill' in nb['metadata']
    injected = [c for c in nb['cells'] if 'injected-parameters' in c.get('metadata', {}).get('tags', [])]
    assert injected and 'epochs = 2' in ''.join(injected[0]['source'])
    assert [f.name for f in (project/'reports').iterdir() if f.name.startswith('.')] == []  # papermill's copy became the report
    s = json.loads((project/'models'/'train.json').read_text())
    assert s['arch'] == 'small' and s['frames'] == 4 and 1 <= s['epochs_run'] <= 2
    assert 0 <= s['best_valid_auroc'] <= 1
    clips = pd.read_csv(project/'data'/'prepared'/'clips.csv')     # trained on the train split only: no test clip
    assert s['n_train'] == ((clips.split == 'train') & ~clips.ambiguous).sum() and s['n_valid'] == (clips.split == 'valid').sum()
    p = json.loads((project/'models'/'profile.json').read_text())
    assert p['load_s_mean'] > 0 and p['step_s_mean'] > 0 and p['load_step_ratio'] == pytest.approx(p['load_s_mean'] / p['step_s_mean'])
    assert p['callbacks_s_mean'] >= 0 and p['clips_per_s'] == pytest.approx(p['batch_size'] / (p['load_s_mean'] + p['step_s_mean'] + p['callbacks_s_mean']))
    assert len(pd.read_csv(project/'models'/'train_log.csv')) == s['epochs_run']
    assert (project/'dvclive'/'metrics.json').exists()
    assert 'best validation AUROC' in (project/'train_stdout.txt').read_text()


def test_metrics_schema_and_threshold_from_validation(project):
    from accident_nbdev.evaluate import (binary_metrics, choose_threshold, choose_video_agg, negatives_auroc, onset_report,
                                         video_table)
    m = json.loads((project/'reports'/'eval'/'metrics.json').read_text())
    for k in ('threshold', 'video_threshold', 'video_agg', 'clip', 'video', 'onset', 'breakdown', 'model'): assert k in m, k
    for split in ('valid', 'test'):
        for k in ('auroc', 'auprc', 'accuracy', 'precision', 'recall', 'f1', 'tp', 'fp', 'tn', 'fn'): assert k in m['clip'][split]
    assert set(m['video']['test']) == {'max', 'mean', 'topk'}
    for k in ('median_abs_error_s', 'mean_abs_error_s', 'score_sigma_0.5', 'score_sigma_1', 'score_sigma_2'):
        assert k in m['onset'] and k in m['onset_valid']
    # the scores are the model's float32 outputs, written as their shortest float32 text: read them back as float32,
    # or a tiny model's near-equal scores (0.5120954 vs 0.51209563) can fall on the other side of the threshold
    pred = pd.read_csv(project/'reports'/'eval'/'predictions.csv', dtype={'p': np.float32})
    va, te = pred[pred.split == 'valid'], pred[pred.split == 'test']
    assert m['threshold'] == pytest.approx(choose_threshold(va.label, va.p, m['threshold_criterion']))          # chosen on validation ...
    assert m['clip']['test'] == pytest.approx(binary_metrics(te.label, te.p, m['threshold']))   # ... applied to test
    for split, d in (('valid', va), ('test', te)):                   # the clear windows only, at the same threshold
        clear = d[~d.ambiguous.astype(bool)]
        assert m['clip_unambiguous'][split] == pytest.approx(binary_metrics(clear.label, clear.p, m['threshold']))
        assert m['clip_unambiguous'][split]['n'] == m['clip'][split]['n'] - int(d.ambiguous.sum())
    from accident_nbdev.data import load_manifests
    videos, _ = load_manifests(project/'data'/'prepared')
    for split, d in (('valid', va), ('test', te)):                                  # which negatives look like accidents
        got = pd.DataFrame(m['negatives'][split])
        assert 'all normal videos' in set(got.negative)
        pd.testing.assert_frame_equal(got, negatives_auroc(d, videos), check_dtype=False)
    vt = video_table(va, videos, m['top_k'])                                      # the video score, chosen on validation too
    agg, auc = choose_video_agg(vt, 'auto')
    assert m['video_agg_choice']['asked'] == 'auto' and m['video_agg'] == agg
    assert set(m['video_agg_choice']['valid_auroc']) == {'max', 'mean', 'topk'}
    for a, v in auc.items(): assert m['video_agg_choice']['valid_auroc'][a] == (None if v is None else pytest.approx(v))
    if vt.label.nunique() == 2: assert m['video_threshold'] == pytest.approx(choose_threshold(vt.label, vt[agg], m['threshold_criterion']))
    pp = m['prepare']
    for key, d in (('onset', te), ('onset_valid', va)):                            # onset errors, from the same scores
        assert m[key] == pytest.approx(onset_report(d, videos, m['threshold'], pp['min_overlap_seconds'], pp['stride_seconds'])[0])
    for f in ('curves.png', 'confusion.png', 'timelines.png'): assert (project/'reports'/'eval'/f).stat().st_size > 1000


def test_evaluate_without_the_probe(project, tmp_path):
    "`--no-probe` leaves out the shortcut probe's figures and nothing else: the model's metrics are the same."
    full = json.loads((project/'reports'/'eval'/'metrics.json').read_text())
    assert set(full['shortcut_probe']) == {'valid', 'test'}
    run_accident('evaluate', '--out', tmp_path/'eval', '--no-probe', cwd=project)
    m = json.loads((tmp_path/'eval'/'metrics.json').read_text())
    assert 'shortcut_probe' not in m
    assert m['clip'] == full['clip'] and m['video'] == full['video'] and m['threshold'] == full['threshold']


def test_export_parity_and_card(project):
    import torch
    from accident_nbdev.evaluate import load_trained
    from accident_nbdev.export import clip_frames, frames_model, ort_session, run_onnx
    serve = project/'models'/'serve'
    card = json.loads((serve/'model_card.json').read_text())
    assert card['model']['parity_max_abs_diff'] <= 1e-4
    assert card['threshold'] == json.loads((project/'reports'/'eval'/'metrics.json').read_text())['threshold']
    pre = card['preprocessing']
    assert (pre['fps'], pre['size'], pre['frames']) == (4.0, 32, 4) and len(card['data']['manifest_sha1']) == 40
    assert card['version'] == f"small-{card['data']['manifest_sha1'][:8]}-{card['model']['sha256'][:8]}"   # names this model
    assert card['data']['manifest_sha1'] == json.loads((project/'models'/'train.json').read_text())['manifest_sha1']  # the training data
    assert 'auroc_change' in card['quantized'] and (serve/'model.int8.onnx').exists()
    assert card['quantized']['fp32_convs'] == 3 and 'first 3 convolutions kept in FP32' in (serve/'model_card.md').read_text()
    assert card['quantized']['fp32_scores'] == 'evaluation'          # the FP32 side of the INT8 comparison: evaluation's scores
    assert card['quantized']['n_clips'] == card['quantized']['n_test_clips'] > 0   # fewer test clips than the sample: all of them
    assert 'stages' not in card['quantized'] and not (serve/'head.int8.onnx').exists()   # the small CNN has no two stages
    assert (serve/'model_card.md').read_text().startswith('# Model card')
    # an independent parity check on other real clips, with a batch size the export never saw
    model, info = load_trained(project/'models')
    clips = pd.read_csv(project/'data'/'prepared'/'clips.csv')
    x = clip_frames(project/'data'/'prepared', clips[clips.split == 'test'].head(7), info['frames'], info['pairs'],
                    info['context_window_frames'], info['context_frames'])
    with torch.no_grad(): ref = frames_model(model, info['mean'], info['std'])(torch.from_numpy(x)).numpy()
    assert np.abs(run_onnx(ort_session(serve/'model.onnx'), x) - ref).max() <= 1e-4


def test_predict_cli(project):
    videos = sorted((project/'data'/'raw').rglob('*.mp4'))[:2]
    cp = run_accident('predict', *videos, '--json', cwd=project)
    res = json.loads(cp.stdout)
    assert len(res) == 2
    for r in res:
        assert r['label'] in ('accident', 'normal') and 0 <= r['probability'] <= 1 and r['n_windows'] == len(r['windows']) >= 1
        assert r['windows'][0]['start_s'] == 0 and r['model_version'] == json.loads((project/'models'/'serve'/'model_card.json').read_text())['version']
    txt = run_accident('predict', videos[0], cwd=project).stdout
    assert ('ACCIDENT' in txt or 'NORMAL' in txt) and ' s ' in txt
    bad = run_accident('predict', project/'nothing.mp4', cwd=project, check=False)
    assert bad.returncode == 2 and 'no such file' in bad.stderr and 'Traceback' not in bad.stderr


def test_bad_input_messages(project, tmp_path):
    cp = run_accident('train', tmp_path/'missing', cwd=project, check=False)
    assert cp.returncode == 2 and 'accident prepare' in cp.stderr and 'Traceback' not in cp.stderr
    cp = run_accident('train', '--arch', 'vgg16', cwd=project, check=False)
    assert cp.returncode == 2 and 'known: small, efficientnet_lite0' in cp.stderr
    cp = run_accident('train', '--cached', '--out', tmp_path/'c', cwd=project, check=False)   # the small CNN has no cached path
    assert cp.returncode == 2 and "arch 'small' cannot train on cached features" in cp.stderr and '--no-cached' in cp.stderr
    assert not (tmp_path/'c').exists()
    # a validation split with one class only: refused before training starts
    bad = tmp_path/'prepared'
    shutil.copytree(project/'data'/'prepared', bad)
    clips = pd.read_csv(bad/'clips.csv')
    clips.loc[clips.split == 'valid', 'label'] = 0
    clips.to_csv(bad/'clips.csv', index=False)
    cp = run_accident('train', bad, '--out', tmp_path/'m', cwd=project, check=False)
    assert cp.returncode == 2 and 'holds only class 0' in cp.stderr and not (tmp_path/'m').exists()
    cp = run_accident('export', '--metrics', tmp_path/'none.json', cwd=project, check=False)
    assert cp.returncode == 2 and 'accident evaluate' in cp.stderr
    # a prepared folder other than the one the model was trained on: the card would name the wrong data
    cp = run_accident('export', '--prepared', bad, '--out', tmp_path/'serve', cwd=project, check=False)
    assert cp.returncode == 2 and 'was trained on prepared data with manifest SHA-1' in cp.stderr and not (tmp_path/'serve').exists()
    cp = run_accident('export', '--int8-fp32-convs', '-1', '--out', tmp_path/'serve', cwd=project, check=False)
    assert cp.returncode == 2 and 'int8_fp32_convs must be 0 or more' in cp.stderr and not (tmp_path/'serve').exists()
    cp = run_accident('export', '--int8-clips', '-1', '--out', tmp_path/'serve', cwd=project, check=False)
    assert cp.returncode == 2 and 'int8_clips must be 0' in cp.stderr and not (tmp_path/'serve').exists()
    # an unknown threshold rule in params.yaml: refused before any scoring, nothing written
    write_params(tmp_path/'params.yaml', evaluate=dict(threshold='accuracy'))
    cp = run_accident('evaluate', project/'data'/'prepared', '--model', project/'models', '--out', tmp_path/'eval',
                      cwd=tmp_path, check=False)
    assert cp.returncode == 2 and 'known: youden, f1' in cp.stderr and not (tmp_path/'eval').exists()
    write_params(tmp_path/'params.yaml', evaluate=dict(video_agg='median'))          # ... and an unknown video score
    cp = run_accident('evaluate', project/'data'/'prepared', '--model', project/'models', '--out', tmp_path/'eval',
                      cwd=tmp_path, check=False)
    assert cp.returncode == 2 and 'use auto, max, topk, mean' in cp.stderr and not (tmp_path/'eval').exists()


def test_efficientnet_lite0_weights_from_the_wheel():
    "The wheel's lukemelas-style weights, renamed, load strictly into timm's model and classify ImageNet images."
    from skimage import data
    from accident_nbdev.learner import efficientnet_lite0, imagenet_top5
    m = efficientnet_lite0(pretrained=True)
    cat, cup = imagenet_top5(m, data.chelsea()), imagenet_top5(m, data.coffee())
    assert cat[0] == 282 and {281, 285} & set(cat)          # tiger cat; tabby / Egyptian cat among the top 5
    assert cup[0] == 967                                      # espresso


def test_frame_pairs_model_end_to_end(project, tmp_path):
    """A frame-pairs model (the default arch, with the default context) through train -> evaluate -> export -> predict:
    the summary and the card say pairs, the ONNX input takes two frames per sampled point of the window and of its
    context, and serving follows the card."""
    proj = tmp_path/'pairs'
    (proj/'nbs').mkdir(parents=True)
    shutil.copy(ROOT/'nbs'/'03_train.ipynb', proj/'nbs')
    shutil.copytree(project/'data'/'prepared', proj/'data'/'prepared')
    write_params(proj/'params.yaml', prepare=SMALL_PREPARE,
                 train=dict(arch='efficientnet_lite0_pairs', freeze=4, frames=4, epochs=1, bs=8, patience=1, cached=False))
    for cmd in ('train', 'evaluate', 'export'): run_accident(cmd, cwd=proj)
    assert json.loads((proj/'models'/'train.json').read_text())['pairs'] is True
    card = json.loads((proj/'models'/'serve'/'model_card.json').read_text())
    assert card['preprocessing']['pairs'] is True and card['preprocessing']['frames'] == 4
    assert card['preprocessing']['context_frames'] == 4 and card['preprocessing']['context_seconds'] == 4.0   # the default
    assert card['model']['input']['shape'] == ['batch', 2 * (4 + 4), 32, 32, 3] and card['model']['parity_max_abs_diff'] <= 1e-4
    assert 'each followed by the next frame' in (proj/'models'/'serve'/'model_card.md').read_text()
    video = sorted((project/'data'/'raw').rglob('*.mp4'))[0]
    r = json.loads(run_accident('predict', video, '--model', proj/'models'/'serve', '--json', cwd=proj).stdout)
    assert r['n_windows'] == len(r['windows']) >= 1 and 0 <= r['probability'] <= 1
    # the two stages (a point's frames -> features, a window's features -> probability) give the one-file model's scores
    from accident_nbdev.predict import AccidentDetector
    st = card['stages']
    assert (st['frames_per_point'], st['points_per_window'], st['encoder']['input']['shape']) == (2, 4 + 4, ['points', 2, 32, 32, 3])
    assert st['parity_max_abs_diff'] <= 1e-4 and '## Two stages' in (proj/'models'/'serve'/'model_card.md').read_text()
    staged, whole = AccidentDetector(proj/'models'/'serve'), AccidentDetector(proj/'models'/'serve', two_stage=False)
    assert staged.two_stage and not whole.two_stage
    a, b = staged.predict_video(video), whole.predict_video(video)
    assert np.abs(np.array([w['probability'] for w in a['windows']]) - [w['probability'] for w in b['windows']]).max() <= 1e-5
    assert (a['label'], a['onset_s']) == (b['label'], b['onset_s'])


def test_cached_feature_model_end_to_end(project, tmp_path):
    """Training on cached backbone features (`train.cached`) through Papermill, then export and predict: the
    features are computed once beside the prepared folder and reused, and the result is an ordinary frame model."""
    proj = tmp_path/'cached'
    (proj/'nbs').mkdir(parents=True)
    shutil.copy(ROOT/'nbs'/'03_train.ipynb', proj/'nbs')
    shutil.copytree(project/'data'/'prepared', proj/'data'/'prepared')
    write_params(proj/'params.yaml', prepare=SMALL_PREPARE,
                 train=dict(arch='efficientnet_lite0_feature_pairs', frames=4, epochs=1, bs=8, patience=1, cached=True))
    for cmd in ('train', 'evaluate', 'export'): run_accident(cmd, cwd=proj)
    s = json.loads((proj/'models'/'train.json').read_text())
    clips = pd.read_csv(proj/'data'/'prepared'/'clips.csv')
    n_files = clips[clips.split.isin(['train', 'valid'])].frames_file.nunique()
    cache = proj/'data'/'features'/'prepared'/'efficientnet_lite0-32px'
    assert s['cached'] is True and s['freeze'] == 6 and s['feature_cache']['computed'] == n_files
    assert len(list(cache.glob('*.npy'))) == n_files and not list(cache.glob('*.tmp*'))
    card = json.loads((proj/'models'/'serve'/'model_card.json').read_text())
    assert card['preprocessing']['context_frames'] == 4 and card['preprocessing']['context_seconds'] == 4.0   # the default
    assert card['model']['input']['shape'] == ['batch', 2 * (4 + 4), 32, 32, 3] and card['model']['parity_max_abs_diff'] <= 1e-4
    assert card['stages']['frames_per_point'] == 2 and card['stages']['parity_max_abs_diff'] <= 1e-4   # both frames of a pair encoded
    video = sorted((project/'data'/'raw').rglob('*.mp4'))[0]
    r = json.loads(run_accident('predict', video, '--model', proj/'models'/'serve', '--json', cwd=proj).stdout)
    assert r['n_windows'] == len(r['windows']) >= 1 and 0 <= r['probability'] <= 1
    # the static INT8 stages: calibrated on training clips, scored on the INT8 model's test clips, served by --int8
    q8 = card['quantized']['stages']
    assert all((proj/'models'/'serve'/q8[k]['file']).exists() for k in ('encoder', 'head'))
    n_train, cal = int((clips.split == 'train').sum()), q8['calibration']
    assert cal['clips'] == min(16, n_train) and cal['points'] == (4 + 4) * cal['clips']   # 8 points (pairs) per clip
    assert q8['auroc_change'] == pytest.approx(q8['test_auroc'] - card['quantized']['fp32_test_auroc'])
    assert '`head.int8.onnx`: the two stages' in (proj/'models'/'serve'/'model_card.md').read_text()
    r8 = json.loads(run_accident('predict', video, '--model', proj/'models'/'serve', '--json', '--int8', cwd=proj).stdout)
    assert [w['start_s'] for w in r8['windows']] == [w['start_s'] for w in r['windows']]
    assert max(abs(a['probability'] - b['probability']) for a, b in zip(r8['windows'], r['windows'])) < 0.1   # INT8 close to FP32
    run_accident('export', '--no-quantize', cwd=proj)                          # again without INT8: no stale INT8 files left
    assert 'quantized' not in json.loads((proj/'models'/'serve'/'model_card.json').read_text())
    assert not [f.name for f in (proj/'models'/'serve').glob('*.int8.onnx')]
    run_accident('train', '--no-notebook', '--out', 'models2', cwd=proj)                  # a second run: cache reused
    assert json.loads((proj/'models2'/'train.json').read_text())['feature_cache']['computed'] == 0
    r = run_accident('train', '--arch', 'efficientnet_lite0_pairs', '--no-notebook', '--out', 'm3', cwd=proj, check=False)
    assert r.returncode != 0 and 'cannot train on cached features' in r.stderr
    run_accident('train', '--arch', 'small', '--no-cached', '--no-notebook', '--epochs', 1, '--out', 'm4', cwd=proj)   # from pixels
    s4 = json.loads((proj/'m4'/'train.json').read_text())
    assert s4['arch'] == 'small' and s4['cached'] is False and s4['feature_cache'] is None


def test_context_model_end_to_end(project, tmp_path):
    """A model with context (`--context`: frames from the seconds before each window) trains, evaluates and exports,
    and the served detector reads the card's context: on a test video's stored frames it gives the very window
    scores evaluation gave."""
    from accident_nbdev.predict import AccidentDetector
    m, ev, serve = tmp_path/'m', tmp_path/'eval', tmp_path/'serve'
    run_accident('train', '--out', m, '--no-notebook', '--epochs', 1, '--context', 2, '--context-frames', 2, cwd=project)
    s = json.loads((m/'train.json').read_text())
    assert (s['context_seconds'], s['context_window_frames'], s['context_frames']) == (2.0, 8, 2)
    run_accident('evaluate', '--model', m, '--out', ev, '--no-probe', cwd=project)
    run_accident('export', '--model', m, '--metrics', ev/'metrics.json', '--out', serve, '--no-quantize', cwd=project)
    card = json.loads((serve/'model_card.json').read_text())
    pre = card['preprocessing']
    assert (pre['context_seconds'], pre['context_window_frames'], pre['context_frames']) == (2.0, 8, 2)
    assert card['model']['input']['shape'][1] == 4 + 2 and card['model']['parity_max_abs_diff'] <= 1e-4
    assert 'from the 2 s before the window' in (serve/'model_card.md').read_text()
    assert 'stages' not in card and not (serve/'encoder.onnx').exists()   # the small CNN differences its sampled frames
    pred = pd.read_csv(ev/'predictions.csv', dtype={'p': np.float32})
    clips = pd.read_csv(project/'data'/'prepared'/'clips.csv')
    vid = pred[pred.split == 'test'].video_id.iloc[0]
    frames = np.load(project/'data'/'prepared'/clips[clips.video_id == vid].frames_file.iloc[0])
    r = AccidentDetector(serve).predict_frames(frames)
    want = pred[pred.video_id == vid].sort_values('start_s')
    assert [w['start_s'] for w in r['windows']] == pytest.approx(want.start_s.tolist())
    assert np.abs(np.array([w['probability'] for w in r['windows']]) - want.p.values).max() <= 1e-4
    bad = run_accident('train', '--out', tmp_path/'x', '--no-notebook', '--context', 0.1, cwd=project, check=False)
    assert bad.returncode == 2 and 'need at least 1' in bad.stderr and 'Traceback' not in bad.stderr
