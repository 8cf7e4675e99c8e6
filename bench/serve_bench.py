"""Benchmark of the inference service on this machine.

Starts the real server (`accident serve`, uvicorn) on loopback, drives N concurrent Locust users for T seconds
with a default-size clip (one window of the served model as an .npz) and then with a 30 s video, and reports
req/s, p50/p95/p99, errors and the server's RSS before and after. Then, in this process: ONNX Runtime against
PyTorch eager for the same model and input (needs the trained `models/best.pth`; skipped without it), a whole
30 s video scored against real time, and for a model exported in two stages, their model time against the
one-file model's on that video. With `--int8` the server and the in-process runs use the INT8 model (`--int8` of
`accident serve`: both stages in static INT8 where the export wrote them), and the FP32 comparisons are replaced by INT8 against
FP32 model time on one clip and on the 30 s video.

    python bench/serve_bench.py [--users 4] [--seconds 30] [--model DIR] [--int8] [--out bench/results/serve.json]

Locust runs in its own process (bench/locustfile.py): its gevent monkey-patching breaks other libraries."""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tests'))
from serving import running  # noqa: E402  (the same launcher as the tests)

from accident_nbdev.predict import AccidentDetector, resolve_model_dir  # noqa: E402


def video_30s(folder: Path) -> Path:
    "A 30 s, 640x360, 12 fps synthetic roadside video with a rear-end collision."
    from accident_nbdev.synth import generate_video
    f = folder/'video30.mp4'
    if not f.exists():
        generate_video(dict(index=0, seed=30, label=1, scenario='rear_end', layout='straight', time_of_day='day', weather='clear',
                            width=640, height=360, fps=12, duration=30.0, crf=23, preset='superfast'), f)
    return f


def locust(url: str, users: int, seconds: int, payload: Path | None, tag: str, tmp: Path) -> dict:
    "One headless Locust run; its /predict figures from the stats CSV."
    env = dict(os.environ, **({'ACCIDENT_LOAD_FILE': str(payload)} if payload else {}))
    prefix = tmp/tag
    cp = subprocess.run(['locust', '-f', str(ROOT/'bench'/'locustfile.py'), '--headless', '-u', str(users), '-r', str(users),
                         '-t', f'{seconds}s', '--host', url, '--csv', str(prefix), '--only-summary'],
                        capture_output=True, text=True, env=env, timeout=seconds + 120)
    rows = {r['Name']: r for r in csv.DictReader(open(f'{prefix}_stats.csv'))}
    r = rows.get('/predict')
    if r is None: raise SystemExit(f'locust made no /predict requests:\n{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}')
    return dict(requests=int(r['Request Count']), errors=int(r['Failure Count']), rps=float(r['Requests/s']),
                p50_ms=float(r['50%']), p95_ms=float(r['95%']), p99_ms=float(r['99%']), mean_ms=float(r['Average Response Time']))


def ort_vs_torch(model_dir: Path, card: dict, threads: int, reps: int = 30) -> dict | None:
    "Seconds per call of the same model in ONNX Runtime and PyTorch eager, batch 1 and 8 windows, same threads."
    train_dir = ROOT/'models'
    if not (train_dir/'best.pth').exists(): return None
    import torch
    from accident_nbdev.evaluate import load_trained
    from accident_nbdev.export import frames_model
    model, info = load_trained(train_dir)
    p = card['preprocessing']
    if (info['arch'], info['size'], info['frames']) != (card['model']['arch'], p['size'], p['frames']):
        return dict(skipped=f"models/best.pth ({info['arch']}, {info['size']} px) is not the served model "
                            f"({card['model']['arch']}, {p['size']} px)")
    torch.set_num_threads(threads)
    wrapped = frames_model(model, info['mean'], info['std'])
    det = AccidentDetector(model_dir, threads=threads)
    out = {}
    for bs in (1, 8):
        n = (p['frames'] + p.get('context_frames', 0)) * (2 if p.get('pairs') else 1)   # pairs: each frame and the next
        x = np.random.default_rng(0).integers(0, 256, (bs, n, p['size'], p['size'], 3), dtype=np.uint8)
        xt = torch.from_numpy(x)
        def t_ort(): det.score_windows(x)
        def t_pt():
            with torch.inference_mode(): wrapped(xt)
        res = {}
        for name, f in (('onnxruntime', t_ort), ('pytorch', t_pt)):
            for _ in range(3): f()
            t0 = time.perf_counter()
            for _ in range(reps): f()
            res[name] = (time.perf_counter() - t0) / reps
        out[f'batch{bs}'] = dict(onnxruntime_ms=res['onnxruntime'] * 1000, pytorch_ms=res['pytorch'] * 1000,
                                 speedup=res['pytorch'] / res['onnxruntime'])
    return out


def _interleaved(dets: dict, inputs: dict, reps: int) -> dict:
    """Median model time (`inference_s`) of each detector of `dets` on each frames array of `inputs`, all of them
    interleaved round by round, `reps` rounds after one that warms up: `{'<input>_<detector>': seconds}`."""
    times = {f'{i}_{d}': [] for i in inputs for d in dets}
    for _ in range(reps + 1):
        for d, det in dets.items():
            for i, frames in inputs.items(): times[f'{i}_{d}'].append(det.predict_frames(frames)['inference_s'])
    return {k: float(np.median(v[1:])) for k, v in times.items()}

def _max_window_diff(a, b, frames) -> tuple[int, float]:
    "The number of windows of `frames` and the largest difference of a window's score between detectors `a` and `b`."
    ra, rb = a.predict_frames(frames), b.predict_frames(frames)
    return ra['n_windows'], float(max(abs(x['probability'] - y['probability']) for x, y in zip(ra['windows'], rb['windows'])))


def two_stage_vs_one_file(model_dir: Path, video: Path, threads: int, reps: int = 5) -> dict:
    """Model time of the 30 s video's windows through the two stages (each point encoded once) and through the
    one-file model (each window whole), interleaved, median of `reps`; and the largest difference of a window's score."""
    from accident_nbdev.predict import load_video
    staged, whole = AccidentDetector(model_dir, threads=threads), AccidentDetector(model_dir, threads=threads, two_stage=False)
    frames, _ = load_video(video, staged.fps, staged.size)
    med = _interleaved({'two_stage': staged, 'one_file': whole}, {'video': frames}, reps)
    n, diff = _max_window_diff(staged, whole, frames)
    return dict(two_stage_s=med['video_two_stage'], one_file_s=med['video_one_file'],
                speedup=med['video_one_file'] / med['video_two_stage'], n_windows=n, max_abs_diff=diff)


def int8_vs_fp32(model_dir: Path, video: Path, threads: int, reps: int = 5) -> dict:
    """Model time of one default clip (the video's first window) and of the 30 s video through the INT8 model
    (`AccidentDetector(int8=True)`) and the FP32 one, interleaved, median of `reps`; and the largest difference of a
    window's score on the video."""
    from accident_nbdev.predict import load_video
    q, f = AccidentDetector(model_dir, threads=threads, int8=True), AccidentDetector(model_dir, threads=threads)
    frames, _ = load_video(video, f.fps, f.size)
    med = _interleaved({'int8': q, 'fp32': f}, {'clip': frames[:f.window_frames], 'video': frames}, reps)
    n, diff = _max_window_diff(q, f, frames)
    return dict(**{f'{k}_s': v for k, v in med.items()}, clip_speedup=med['clip_fp32'] / med['clip_int8'],
                video_speedup=med['video_fp32'] / med['video_int8'], two_stage=q.two_stage, n_windows=n, max_abs_diff=diff)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--users', type=int, default=4)
    ap.add_argument('--seconds', type=int, default=30)
    ap.add_argument('--model', help='exported model folder (default: models/serve, else the bundled demo model)')
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--int8', action='store_true', help='serve and score with the INT8 model')
    ap.add_argument('--out', default=str(ROOT/'bench'/'results'/'serve.json'))
    a = ap.parse_args()
    model_dir = resolve_model_dir(a.model)
    tmp = Path(tempfile.mkdtemp(prefix='serve-bench-'))
    video = video_30s(tmp)
    res = dict(machine=dict(cpus=os.cpu_count(), threads=a.threads), model=str(model_dir), users=a.users, seconds=a.seconds,
               int8=a.int8)
    with running(['serve', '--model', str(model_dir), '--no-ui', '--log-dir', str(tmp/'log')] + (['--int8'] if a.int8 else []),
                 '/ready') as (url, proc):
        card = httpx.get(url + '/model').json()
        rss = psutil.Process(proc.pid)
        res['rss_before_mb'] = rss.memory_info().rss / 2**20
        print(f"model {card['version']} on {url}; {a.users} users x {a.seconds} s per run")
        res['clip'] = locust(url, a.users, a.seconds, None, 'clip', tmp)
        res['rss_after_clip_mb'] = rss.memory_info().rss / 2**20
        res['video30'] = locust(url, a.users, a.seconds, video, 'video30', tmp)
        res['rss_after_mb'] = rss.memory_info().rss / 2**20
        one = httpx.post(url + '/predict', files={'file': (video.name, video.read_bytes())}, timeout=120).json()
        res['video30']['one_request'] = dict(timing=one['timing'], n_windows=one['n_windows'])
    det = AccidentDetector(model_dir, threads=a.threads, int8=a.int8)
    det.predict_video(video)
    t0 = time.perf_counter(); r = det.predict_video(video); dt = time.perf_counter() - t0
    res['video30_inprocess'] = dict(seconds=dt, decode_s=r['decode_s'], inference_s=r['inference_s'], n_windows=r['n_windows'],
                                    x_realtime=r['duration_s'] / dt, two_stage=det.two_stage)
    res['two_stage'] = two_stage_vs_one_file(model_dir, video, a.threads) if det.two_stage and not a.int8 else None
    res['ort_vs_torch'] = dict(skipped='--int8: PyTorch runs the FP32 model') if a.int8 else ort_vs_torch(model_dir, card, a.threads)
    res['int8_vs_fp32'] = int8_vs_fp32(model_dir, video, a.threads) if a.int8 else None

    c, v = res['clip'], res['video30']
    print(f"\n{'payload':<22}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'requests':>10}")
    for name, x in (('default clip (.npz)', c), ('30 s video (.mp4)', v)):
        print(f"{name:<22}{x['rps']:>8.1f}{x['p50_ms']:>9.0f}{x['p95_ms']:>9.0f}{x['p99_ms']:>9.0f}{x['errors']:>8}{x['requests']:>10}")
    print(f"server RSS: {res['rss_before_mb']:.0f} MB before, {res['rss_after_clip_mb']:.0f} MB after the clip run, "
          f"{res['rss_after_mb']:.0f} MB after the video run")
    iv = res['video30_inprocess']
    print(f"30 s video in process: {iv['seconds']:.2f} s ({iv['decode_s']:.2f} s decode, {iv['inference_s']:.2f} s model, "
          f"{iv['n_windows']} windows) = {iv['x_realtime']:.0f}x real time; over HTTP, one request: {one['timing']}")
    if res['two_stage']:
        t = res['two_stage']
        print(f"30 s video, model time: two stages {t['two_stage_s']:.2f} s, one-file model {t['one_file_s']:.2f} s -> "
              f"{t['speedup']:.2f}x ({t['n_windows']} windows; scores differ by at most {t['max_abs_diff']:.1e})")
    if res['int8_vs_fp32']:
        t = res['int8_vs_fp32']
        print(f"model time, INT8 ({'two stages' if t['two_stage'] else 'one file'}) against FP32: one clip {t['clip_int8_s'] * 1000:.1f} "
              f"against {t['clip_fp32_s'] * 1000:.1f} ms ({t['clip_speedup']:.2f}x), 30 s video {t['video_int8_s']:.2f} against "
              f"{t['video_fp32_s']:.2f} s ({t['video_speedup']:.2f}x); window scores differ by at most {t['max_abs_diff']:.3f}")
    if res['ort_vs_torch'] and 'skipped' in res['ort_vs_torch']: print(f"ONNX Runtime vs PyTorch: skipped: {res['ort_vs_torch']['skipped']}")
    elif res['ort_vs_torch']:
        for k, x in res['ort_vs_torch'].items():
            print(f"{k}: ONNX Runtime {x['onnxruntime_ms']:.1f} ms, PyTorch eager {x['pytorch_ms']:.1f} ms -> {x['speedup']:.2f}x")
    else: print('ONNX Runtime vs PyTorch: skipped (no models/best.pth: run `dvc repro` first)')
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    tmpf = out.with_suffix('.tmp'); tmpf.write_text(json.dumps(res, indent=2)); tmpf.replace(out)
    print(f'\nwritten {out}')
    return 0


if __name__ == '__main__': sys.exit(main())
