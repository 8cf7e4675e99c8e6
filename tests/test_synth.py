"`accident synth`: both layouts, annotations, determinism, options, reruns, bad input."
import hashlib
import json

import pandas as pd

from accident_nbdev.video import probe_video
from conftest import run_accident

ANN_COLUMNS = {'video', 'label', 'scenario', 'onset_s', 'end_s', 'event_s', 'box_x0', 'box_y0', 'box_x1', 'box_y1',
               'weather', 'time_of_day', 'layout', 'width', 'height', 'fps', 'duration_s', 'seed', 'group'}


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*.mp4'))}


def test_tudat_layout_and_annotations(synth_tudat):
    ann = pd.read_csv(synth_tudat/'annotations.csv')
    assert ANN_COLUMNS <= set(ann.columns) and len(ann) == 8
    acc, nor = ann[ann.label == 1], ann[ann.label == 0]
    assert acc.video.str.match(r'(Final_videos/(Positive_Vidoes|challenging-environment)|Rash-Driving/beanNG)/').all()
    assert nor.video.str.startswith('Final_videos/Negative_Videos/').all()
    assert acc.onset_s.between(1.0, 6.5).all() and (acc.end_s > acc.onset_s).all()
    assert nor.onset_s.isna().all()
    assert acc[['box_x0', 'box_y0', 'box_x1', 'box_y1']].stack().between(0, 1).all()
    for v in ann.itertuples():
        info = probe_video(synth_tudat/v.video)
        assert info['codec'] == 'h264' and (info['width'], info['height']) == (160, 120)


def test_folders_layout_is_deterministic_per_seed(tmp_path, small_params, synth_tudat):
    a, b = tmp_path/'a', tmp_path/'b'
    for out in (a, b):
        run_accident('--params', small_params, 'synth', out, '--n-videos', 4, '--seed', 9, '--layout', 'folders')
    assert _digest(a) == _digest(b)                   # the same bytes, video for video
    ann = pd.read_csv(a/'annotations.csv')
    assert set(ann.video.str.split('/').str[0]) == {'accident', 'normal'}
    pd.testing.assert_frame_equal(ann, pd.read_csv(b/'annotations.csv'))
    run_accident('--params', small_params, 'synth', tmp_path/'c', '--n-videos', 4, '--seed', 10, '--layout', 'folders')
    assert _digest(tmp_path/'c').keys() != _digest(a).keys()


def test_scenario_and_condition_options(tmp_path, small_params):
    out = tmp_path/'night_rear'
    run_accident('--params', small_params, 'synth', out, '--n-videos', 3, '--scenarios', 'rear_end', '--accident-frac', 1,
                 '--time-of-day', 'night', '--weather', 'rain', '--layout', 'folders')
    ann = pd.read_csv(out/'annotations.csv')
    assert set(ann.scenario) == {'rear_end'} and set(ann.time_of_day) == {'night'} and set(ann.weather) == {'rain'}
    assert ann.label.tolist() == [1, 1, 1]


def test_rerun_reuses_videos(tmp_path, small_params):
    out = tmp_path/'ds'
    run_accident('--params', small_params, 'synth', out, '--n-videos', 3, '--layout', 'folders')
    before, manifest = _digest(out), (out/'synth.json').read_bytes()
    cp = run_accident('--params', small_params, 'synth', out, '--n-videos', 3, '--layout', 'folders')
    assert '0 generated, 3 up to date' in cp.stdout and _digest(out) == before
    assert (out/'synth.json').read_bytes() == manifest           # an unchanged rerun leaves nothing for DVC to see
    assert json.loads(manifest)['failed'] == []


def test_refuses_a_folder_of_other_files(tmp_path, small_params):
    (tmp_path/'mine').mkdir()
    (tmp_path/'mine'/'wedding.mp4').write_bytes(b'precious')
    cp = run_accident('--params', small_params, 'synth', tmp_path/'mine', '--n-videos', 2, check=False)
    assert cp.returncode == 2 and 'not empty' in cp.stderr
    assert (tmp_path/'mine'/'wedding.mp4').read_bytes() == b'precious'


def test_unknown_scenario_lists_the_known_ones(tmp_path):
    cp = run_accident('synth', tmp_path/'x', '--scenarios', 'meteor', check=False)
    assert cp.returncode == 2 and 'rear_end' in cp.stderr
