"""The inference service, run for real: `accident serve` in a subprocess on a free port (without the training
stack, as in the container), scored over HTTP; a corpus of malformed inputs; the request log."""
import io
import json
import re
import zipfile

import httpx
import numpy as np
import psutil
import pytest

from accident_nbdev.app import example_videos
from accident_nbdev.features import read_request_log
from accident_nbdev.predict import AccidentDetector, bundled_model_dir
from accident_nbdev.video import moving_box_frames, write_video

from serving import running

MODEL = bundled_model_dir()


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
    "The demo's synthetic examples: a rear-end collision and normal traffic."
    acc, normal = example_videos(tmp_path_factory.mktemp('cache'))
    return acc, normal


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp('requests')
    env = dict(ACCIDENT_MAX_UPLOAD_MB='5', ACCIDENT_MAX_VIDEO_SECONDS='20', ACCIDENT_LOG_DIR=str(logdir))
    with running(['serve', '--model', str(MODEL), '--no-ui'], '/ready', env) as (url, proc):
        yield url, proc, logdir


def metric(text: str, name: str, **labels) -> float:
    "One sample of a Prometheus exposition."
    lab = ','.join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf'^{re.escape(name)}{re.escape("{" + lab + "}") if lab else ""} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def post(url: str, name: str, data: bytes, timeout: float = 60) -> httpx.Response:
    return httpx.post(url + '/predict', files={'file': (name, data)}, timeout=timeout)


def test_end_to_end(server, examples):
    """An accident video and a normal one: verdicts, timelines, onset, metrics, request log; same numbers as local scoring.
    The verdicts are the model's own (the rear-end example is a collision in full view, but no model here catches every
    one); what any working model must do is score the collision well above plain traffic, at the collision."""
    url, _, logdir = server
    assert httpx.get(url + '/health').json()['status'] == 'ok'
    card = httpx.get(url + '/model').json()
    before = httpx.get(url + '/metrics').text
    det = AccidentDetector(MODEL)
    local = {k: det.predict_video(v) for k, v in zip(('accident', 'normal'), examples)}
    assert local['accident']['probability'] > local['normal']['probability'] + 0.2, local
    ann = json.loads(examples[0].with_suffix('.json').read_text())               # the generator's truth
    peak = max(local['accident']['windows'], key=lambda w: w['probability'])
    assert peak['start_s'] < ann['end_s'] and ann['onset_s'] < peak['end_s'], (peak, ann)   # the highest window holds the collision
    assert local['normal']['label'] == 'normal'
    out = {}
    for video, kind in zip(examples, ('accident', 'normal')):
        r = post(url, video.name, video.read_bytes())
        assert r.status_code == 200, r.text
        j = out[kind] = r.json()
        assert j['label'] == local[kind]['label'] and j['onset_s'] == local[kind]['onset_s'], (j, local[kind])
        assert j['model_version'] == card['version'] and j['threshold'] == card['video_threshold']
        assert abs(j['probability'] - local[kind]['probability']) < 1e-5
        assert j['n_windows'] == len(j['windows']) == local[kind]['n_windows'] > 1
        starts = [w['start_s'] for w in j['windows']]
        assert starts == sorted(starts) and all(w['end_s'] > w['start_s'] and 0 <= w['probability'] <= 1 for w in j['windows'])
        assert j['input']['kind'] == 'video' and j['input']['width'] == 426 and abs(j['input']['duration_s'] - 10) < 0.2
        assert (j['onset_s'] is None) == (j['label'] == 'normal') and (j['onset_s'] is None or 0 <= j['onset_s'] <= 10)
    m = httpx.get(url + '/metrics').text
    for k in ('accident', 'normal'):
        n = sum(j['label'] == k for j in out.values())
        assert metric(m, 'accident_predictions_total', label=k) - metric(before, 'accident_predictions_total', label=k) == n
    assert metric(m, 'accident_requests_total', endpoint='/predict', method='POST', status='200') \
        - metric(before, 'accident_requests_total', endpoint='/predict', method='POST', status='200') == 2
    assert metric(m, 'accident_inference_seconds_count') - metric(before, 'accident_inference_seconds_count') == 2
    assert metric(m, 'accident_decode_seconds_count') >= 2 and 'accident_request_latency_seconds_bucket' in m
    assert metric(m, 'accident_requests_in_flight') == 1   # the /metrics request itself
    # the request log (written off the request path) has both, with their features
    import time
    for _ in range(50):
        try:
            df = read_request_log(logdir)
            if set(out[k]['request_id'] for k in out) <= set(df.request_id): break
        except Exception: pass
        time.sleep(0.1)
    df = read_request_log(logdir).set_index('request_id')
    for k, j in out.items():
        row = df.loc[j['request_id']]
        assert row.label == j['label'] and abs(row.score - j['probability']) < 1e-9 and row.width == 426
        assert 0 < row.brightness < 255 and row.motion > 0 and row.sharpness > 0


def test_threshold_setting(examples):
    """`ACCIDENT_THRESHOLD` moves the verdict and the onset together: just under the accident example's probability,
    the example is an accident, with the onset the detector finds at that threshold."""
    det = AccidentDetector(MODEL)
    p = det.predict_video(examples[0])['probability']
    thr = round(p - 0.01, 4)
    local = det.predict_video(examples[0], threshold=thr)
    assert local['label'] == 'accident' and local['threshold'] == thr
    assert (local['onset_s'] is not None) == any(w['probability'] >= local['window_threshold'] for w in local['windows'])
    env = dict(ACCIDENT_THRESHOLD=str(thr), ACCIDENT_LOG_DIR='')
    with running(['serve', '--model', str(MODEL), '--no-ui'], '/ready', env) as (url, _):
        j = post(url, examples[0].name, examples[0].read_bytes()).json()
    assert (j['label'], j['threshold'], j['onset_s']) == ('accident', thr, local['onset_s']), j


def test_npz_clip(server):
    "The seed's format: an .npz of frames [T,H,W,3] uint8, at another frame rate and size."
    url = server[0]
    frames = moving_box_frames(48, 96, 128)
    b = io.BytesIO(); np.savez_compressed(b, frames=frames, fps=np.float32(12)); 
    r = post(url, 'clip.npz', b.getvalue())
    assert r.status_code == 200, r.text
    j = r.json()
    assert j['input'] == dict(kind='npz', width=128, height=96, fps=12.0, duration_s=4.0, frames=48)
    assert j['n_windows'] == 1 and 0 <= j['probability'] <= 1


def _npz(**arrays) -> bytes:
    b = io.BytesIO(); np.savez(b, **arrays); return b.getvalue()


def _npz_header_only(shape, descr='|u1') -> bytes:
    "An .npz whose frames.npy header declares `shape` over a few bytes of data (an 'npz bomb')."
    h = io.BytesIO(); np.lib.format.write_array_header_1_0(h, dict(descr=descr, fortran_order=False, shape=shape))
    z = io.BytesIO()
    with zipfile.ZipFile(z, 'w', zipfile.ZIP_DEFLATED) as f: f.writestr('frames.npy', h.getvalue() + b'\0' * 1024)
    return z.getvalue()


def _video(path, frames, fps=10, **kw) -> bytes:
    write_video(path, frames, fps=fps, **kw); return path.read_bytes()


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    "At least 30 malformed inputs: (name, bytes, expected status)."
    import av
    d = tmp_path_factory.mktemp('corpus')
    rng = np.random.default_rng(0)
    good = _video(d/'good.mp4', moving_box_frames(40, 96, 128))
    slow = bytearray(_video(d/'nofast.mkv', moving_box_frames(40, 96, 128)))
    big_zeros = io.BytesIO(); np.savez_compressed(big_zeros, frames=np.zeros((600, 1024, 1024, 3), np.uint8))
    with av.open(str(d/'huge.avi'), 'w') as c:                       # one 10000 x 10000 frame, 1.5 MB as MJPEG
        st = c.add_stream('mjpeg', rate=1); st.width = st.height = 10000; st.pix_fmt = 'yuvj420p'
        for p in st.encode(av.VideoFrame.from_ndarray(np.zeros((10000, 10000, 3), np.uint8), format='rgb24')): c.mux(p)
        for p in st.encode(): c.mux(p)
    with av.open(str(d/'audio.mp4'), 'w') as c:                      # an mp4 with sound and no picture
        st = c.add_stream('aac', rate=16000)
        for i in range(10):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
            fr.sample_rate, fr.pts = 16000, i * 1024
            for p in st.encode(fr): c.mux(p)
        for p in st.encode(): c.mux(p)
    frames_ok = np.zeros((8, 64, 64, 3), np.uint8)
    npz_ok = _npz(frames=frames_ok)
    items = [
        ('random.mp4', rng.bytes(4096), 422), ('random.npz', rng.bytes(4096), 422), ('random.webm', rng.bytes(100_000), 422),
        ('notes.mp4', b'this is a text file, not a video\n' * 50, 422), ('readme.mkv', b'# hello\n', 422),
        ('empty.mp4', b'', 422), ('empty.npz', b'', 422),
        ('truncated.mp4', good[:len(good) // 2], 422), ('header-only.mp4', good[:64], 422),
        ('truncated.mkv', bytes(slow[:len(slow) // 3]), 422),
        ('truncated.npz', npz_ok[:len(npz_ok) // 2], 422),
        ('bomb.npz', _npz_header_only((10000, 4000, 4000, 3)), 422),
        ('wide-bomb.npz', _npz_header_only((1, 10000, 10000, 3)), 422),
        ('many-frames.npz', _npz_header_only((20000, 16, 16, 3)), 422),
        ('negative-shape.npz', _npz_header_only((-5, 64, 64, 3)), 422),
        ('zeros-1.8GB.npz', big_zeros.getvalue(), 422),
        ('object.npz', _npz(frames=np.array([None, 'x', 1], dtype=object)), 422),
        ('float.npz', _npz(frames=frames_ok.astype(np.float32)), 422),
        ('int16.npz', _npz(frames=frames_ok.astype(np.int16)), 422),
        ('zero-frames.npz', _npz(frames=np.zeros((0, 64, 64, 3), np.uint8)), 422),
        ('one-pixel.npz', _npz(frames=np.zeros((8, 1, 1, 3), np.uint8)), 422),
        ('gray.npz', _npz(frames=np.zeros((8, 64, 64), np.uint8)), 422),
        ('rgba.npz', _npz(frames=np.zeros((8, 64, 64, 4), np.uint8)), 422),
        ('no-frames.npz', _npz(clip=frames_ok), 422),
        ('fps-zero.npz', _npz(frames=frames_ok, fps=np.float32(0)), 422),
        ('fps-text.npz', _npz(frames=frames_ok, fps=np.array('fast')), 422),
        ('fps-nan.npz', _npz(frames=frames_ok, fps=np.float64('nan')), 422),
        ('too-long.npz', _npz(frames=np.zeros((2000, 16, 16, 3), np.uint8), fps=np.float32(10)), 422),
        ('not-npy.npz', (lambda z: (zipfile.ZipFile(z, 'w').writestr('frames.npy', b'garbage' * 100), z.getvalue())[1])(io.BytesIO()), 422),
        ('huge-10000.avi', (d/'huge.avi').read_bytes(), 422),
        ('tiny-2px.mp4', _video(d/'tiny.mp4', np.zeros((10, 2, 2, 3), np.uint8), fps=5), 422),
        ('too-long.mp4', _video(d/'long.mp4', np.zeros((250, 32, 32, 3), np.uint8), fps=10), 422),
        ('audio-only.mp4', (d/'audio.mp4').read_bytes(), 422),
        ('too-big.mp4', rng.bytes(6 * 2**20), 413),
        ('notes.txt', b'hello', 415), ('image.png', b'\x89PNG\r\n\x1a\n' + rng.bytes(100), 415),
        ('program.exe', rng.bytes(300), 415), ('no-extension', good, 415), ('anim.gif', b'GIF89a' + rng.bytes(50), 415),
    ]
    return items


def test_malformed_corpus(server, corpus):
    "Every malformed input gets its 4xx with a reason, never a 500; the server keeps serving; memory stays bounded."
    url, proc, _ = server
    assert len(corpus) >= 30
    rss = psutil.Process(proc.pid)
    post(url, 'warm.npz', _npz(frames=np.zeros((8, 64, 64, 3), np.uint8)))
    before = rss.memory_info().rss
    peak = before
    wrong = []
    for name, data, status in corpus:
        r = post(url, name, data)
        peak = max(peak, rss.memory_info().rss)
        detail = r.json().get('detail') if r.headers.get('content-type', '').startswith('application/json') else r.text
        if r.status_code != status or not detail: wrong.append((name, r.status_code, detail))
        assert httpx.get(url + '/health').status_code == 200, f'server down after {name}'
    assert not wrong, wrong
    # requests that are not even proper uploads
    assert httpx.post(url + '/predict', data={'other': 'x'}).status_code == 422                       # no file field
    assert httpx.post(url + '/predict', content=b'{"frames": 1}', headers={'content-type': 'application/json'}).status_code == 422
    assert httpx.post(url + '/predict', content=b'--x\r\nbroken', headers={'content-type': 'multipart/form-data; boundary=x'}).status_code in (400, 422)
    assert httpx.get(url + '/predict').status_code == 405
    # a declared Content-Length over the limit is refused before the body is read
    import socket
    host, port = url.rsplit('/', 1)[1].split(':')
    with socket.create_connection((host, int(port)), timeout=30) as sk:
        sk.sendall(f'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n'
                   f'Content-Length: {50 * 2**20}\r\n\r\n'.encode() + b'--x\r\n')
        assert sk.recv(200).startswith(b'HTTP/1.1 413')
    m = httpx.get(url + '/metrics').text
    assert metric(m, 'accident_errors_total', endpoint='/predict', reason='internal') == 0
    assert metric(m, 'accident_errors_total', endpoint='/predict', reason='invalid_input') >= 30
    after = rss.memory_info().rss
    print(f'server RSS: {before / 2**20:.0f} MB before, {peak / 2**20:.0f} MB peak, {after / 2**20:.0f} MB after the corpus')
    assert peak - before < 400 * 2**20, (before, peak)
    r = post(url, 'still-works.npz', _npz(frames=np.zeros((8, 64, 64, 3), np.uint8)))
    assert r.status_code == 200


def test_ready_and_bad_model(tmp_path):
    "A missing model is a clear error at start, not a server that answers 500."
    import subprocess, sys
    from serving import NO_TRAINING_STACK
    cp = subprocess.run([sys.executable, '-c', NO_TRAINING_STACK, 'serve', '--model', str(tmp_path/'nothing'), '--port', '9'],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 2 and 'no model_card.json' in cp.stderr and 'Traceback' not in cp.stderr


def test_locustfile(server, tmp_path):
    "The load test's Locust file works against the real server (a few seconds, two users)."
    import csv, subprocess
    from serving import ROOT
    cp = subprocess.run(['locust', '-f', str(ROOT/'bench'/'locustfile.py'), '--headless', '-u', '2', '-r', '2', '-t', '4s',
                         '--host', server[0], '--csv', str(tmp_path/'run'), '--only-summary'], capture_output=True, text=True, timeout=180)
    rows = {r['Name']: r for r in csv.DictReader(open(tmp_path/'run_stats.csv'))}
    assert '/predict' in rows, cp.stdout + cp.stderr
    assert int(rows['/predict']['Request Count']) > 0 and int(rows['/predict']['Failure Count']) == 0
