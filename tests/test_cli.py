"The `accident` command end to end: help, prepare on both layouts, reruns, bad input."
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from accident_nbdev.video import moving_box_frames, write_video
from conftest import run_accident


def test_help_lists_commands():
    out = run_accident('--help').stdout
    for cmd in ('synth', 'prepare', 'probe'): assert cmd in out
    assert 'usage: accident prepare' in run_accident('prepare', '--help').stdout
    assert run_accident('--version').stdout.startswith('accident_nbdev ')


def test_no_command_prints_help_and_fails():
    cp = run_accident(check=False)
    assert cp.returncode == 2 and 'COMMAND' in cp.stdout


def test_prepare_tudat_layout(synth_tudat, small_params, tmp_path):
    out = tmp_path/'prepared'
    cp = run_accident('--params', small_params, 'prepare', synth_tudat, '--out', out)
    assert '8 videos' in cp.stdout
    videos, clips = pd.read_csv(out/'videos.csv'), pd.read_csv(out/'clips.csv')
    assert set(videos.subset) <= {'positive', 'challenging', 'beamng', 'negative'}
    assert (videos.label == 1).sum() == 4 and videos.duration.between(7.5, 8.5).all()
    assert {'scenario', 'weather', 'time_of_day', 'onset_s', 'end_s'} <= set(videos.columns)   # from annotations.csv
    assert clips.groupby('video_id').split.nunique().max() == 1
    acc = clips[clips.video_label == 1]
    # onset annotations label the windows: accident videos also have normal windows away from the crash
    assert 0 < acc.label.sum() < len(acc)
    stats = json.loads((out/'stats.json').read_text())
    assert stats['n_clips'] == len(clips) and stats['layout'] == 'tudat'
    frames = np.load(out/clips.frames_file.iloc[0], mmap_mode='r')
    assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 3)


def test_prepare_class_folders_with_bad_files(tmp_path, small_params):
    raw = tmp_path/'raw'
    for cls in ('Accident', 'normal'):
        for i in range(3):
            write_video(raw/'cam1'/cls/f'{cls}{i}.mp4', moving_box_frames(40, seed=i + 7 * len(cls)), fps=10)
    (raw/'cam1'/'normal'/'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42 but nothing else')
    (raw/'cam1'/'normal'/'notes.txt').write_text('ignored sidecar')
    (raw/'cam1'/'normal'/'picture.png').write_bytes(b'\x89PNG')
    shutil.copy(raw/'cam1'/'Accident'/'Accident0.mp4', raw/'cam1'/'Accident'/'copy.mp4')
    write_video(raw/'cam1'/'normal'/'short.mp4', moving_box_frames(6), fps=10)
    out = tmp_path/'out'
    run_accident('--params', small_params, 'prepare', raw, '--out', out)
    rejects = pd.read_csv(out/'rejects.csv').set_index('path')
    assert 'cannot open as a video' in rejects.loc['cam1/normal/broken.mp4', 'reason']
    assert 'not a video file' in rejects.loc['cam1/normal/picture.png', 'reason']
    assert 'shorter than one window' in rejects.loc['cam1/normal/short.mp4', 'reason']
    assert pd.read_csv(out/'duplicates.csv').path.tolist() == ['cam1/Accident/copy.mp4']
    videos = pd.read_csv(out/'videos.csv')
    assert sorted(videos[videos.status == 'ok'].label) == [0, 0, 0, 1, 1, 1] and set(videos.subset) == {'cam1'}


def test_prepare_rerun_skips_and_param_change_rebuilds(synth_tudat, small_params, tmp_path):
    out = tmp_path/'prepared'
    run_accident('--params', small_params, 'prepare', synth_tudat, '--out', out)
    first = (out/'clips.csv').read_text()
    cp = run_accident('--params', small_params, 'prepare', synth_tudat, '--out', out)
    assert '0 decoded, 8 up to date' in cp.stdout and (out/'clips.csv').read_text() == first
    run_accident('--params', small_params, 'prepare', synth_tudat, '--out', out, '--size', 24)
    clips = pd.read_csv(out/'clips.csv')
    assert np.load(out/clips.frames_file.iloc[0], mmap_mode='r').shape[1:] == (24, 24, 3)
    assert len(list((out/'frames').glob('*.npy'))) == 8            # the 32 px frames were removed


def test_prepare_never_trusts_half_written_files(synth_tudat, small_params, tmp_path):
    out = tmp_path/'prepared'
    run_accident('--params', small_params, 'prepare', synth_tudat, '--out', out)
    npy = sorted((out/'frames').glob('*.npy'))[0]
    npy.with_suffix('.json').unlink()                                  # as if killed between the record and the array
    npy.write_bytes(npy.read_bytes()[:100])
    (out/'frames'/'.leftover.npy.tmp').write_bytes(b'partial')          # a temp file from an interrupted write
    cp = run_accident('--params', small_params, 'prepare', synth_tudat, '--out', out)
    assert '1 decoded, 7 up to date' in cp.stdout
    assert not (out/'frames'/'.leftover.npy.tmp').exists()
    assert np.load(npy).shape[1:] == (32, 32, 3)


@pytest.mark.parametrize('setup, message', [
    (lambda p: None, 'data folder not found'),
    (lambda p: p.mkdir(), 'data folder is empty'),
    (lambda p: (p/'misc').mkdir(parents=True) or (p/'misc'/'a.mp4').write_bytes(b'x'), 'unknown layout'),
])
def test_prepare_bad_input_is_one_clear_line(tmp_path, setup, message):
    raw = tmp_path/'raw'
    setup(raw)
    cp = run_accident('prepare', raw, '--out', tmp_path/'out', check=False)
    assert cp.returncode == 2
    assert message in cp.stderr and 'Traceback' not in cp.stderr
    assert not (tmp_path/'out'/'clips.csv').exists()


def test_bad_parameter_file(tmp_path):
    (tmp_path/'p.yaml').write_text('prepare:\n  clip_secs: 3\n')
    cp = run_accident('--params', tmp_path/'p.yaml', 'prepare', tmp_path, check=False)
    assert cp.returncode == 2 and "unknown parameter 'prepare.clip_secs'" in cp.stderr


def test_evaluate_videos(tmp_path):
    "`accident evaluate-videos` scores a labelled folder through the serving path and writes its summary."
    import json, shutil
    from accident_nbdev.app import example_videos
    from accident_nbdev.predict import bundled_model_dir
    acc, normal = example_videos(tmp_path/'cache')
    for cls, v in (('accident', acc), ('normal', normal)):
        (tmp_path/'videos'/cls).mkdir(parents=True); shutil.copy(v, tmp_path/'videos'/cls/v.name)
    cp = run_accident('evaluate-videos', tmp_path/'videos', '--model', bundled_model_dir(), '--out', tmp_path/'s.json')
    assert 'video AUROC' in cp.stdout and '2 videos (1 accidents)' in cp.stdout, cp.stdout
    s = json.loads((tmp_path/'s.json').read_text())
    assert s['n_videos'] == 2 and s['video']['positives'] == 1 and s['model_version'] in cp.stdout
    assert run_accident('evaluate-videos', tmp_path/'nowhere', check=False).returncode == 2


def test_predict_threshold(tmp_path):
    "`accident predict --threshold` decides the verdict (and the onset) at another video threshold; out of range: exit 2."
    import json
    from accident_nbdev.app import example_videos
    from accident_nbdev.predict import bundled_model_dir
    acc, _ = example_videos(tmp_path/'cache')
    lo = json.loads(run_accident('predict', acc, '--model', bundled_model_dir(), '--threshold', '0', '--json').stdout)
    hi = json.loads(run_accident('predict', acc, '--model', bundled_model_dir(), '--threshold', '1', '--json').stdout)
    assert (lo['label'], lo['threshold'], hi['label'], hi['onset_s']) == ('accident', 0.0, 'normal', None), (lo, hi)
    assert lo['windows'] == hi['windows']
    cp = run_accident('predict', acc, '--threshold', '1.5', check=False)
    assert cp.returncode == 2 and 'between 0 and 1' in cp.stderr and 'Traceback' not in cp.stderr, cp.stderr
