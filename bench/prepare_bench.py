"""Benchmark: clip extraction (`accident prepare`) against the seed's per-clip seeking and against decoding alone.

The seed project cut each window by seeking with OpenCV to its start and decoding it again (5 s windows,
2 s stride, 12 fps, 224 px). accident_nbdev decodes every video once. This script times, on the same videos:

1. the seed's method (OpenCV seek + decode per clip, resize, save each clip), serially, as the seed ran;
2. `prepare_dataset` with the same window parameters, with 1 worker and with every core;
3. decoding alone (PyAV, every frame, no conversion), with 1 worker and with every core.

It prints clips/s for each and the two ratios the project tracks: ours vs seed (target >= 3x) and
ours vs decode-only at the same parallelism (target <= 1.5x). Run:  python bench/prepare_bench.py
"""
import argparse, json, os, shutil, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np

from accident_nbdev.core import load_params
from accident_nbdev.data import prepare_dataset
from accident_nbdev.video import write_video

CLIP_S, STRIDE_S, FPS, SIZE = 5.0, 2.0, 12.0, 224


def make_videos(folder: Path, n: int, seconds: float, fps: int, w: int, h: int) -> list[Path]:
    "Textured 'street' videos with moving blocks and sensor noise, half in accident/, half in normal/."
    paths = []
    for i in range(n):
        p = folder / ('accident' if i % 2 else 'normal') / f'v{i:02d}.mp4'
        paths.append(p)
        if p.exists(): continue
        p.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:h, 0:w]
        bg = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 90)], -1).astype(np.int16)
        bg += rng.integers(-20, 20, (h, w, 3), dtype=np.int16)
        def frames():
            for k in range(int(seconds * fps)):
                img = bg.copy()
                for j in range(6):
                    x = int((k * (3 + j) + j * 200) % (w - 80)); y = 60 + j * (h - 160) // 6
                    img[y:y + 50, x:x + 80] = (40 * j, 200 - 30 * j, 120)
                img += rng.integers(-6, 6, (h, w, 1), dtype=np.int16)
                yield np.clip(img, 0, 255).astype(np.uint8)
        write_video(p, frames(), fps=fps, preset='veryfast', crf=23)
    return paths


def seed_method(paths: list[Path], out: Path) -> int:
    "Per clip: OpenCV seek to the window start, decode it, sample 12 fps, resize to 224, save. Returns clips."
    import cv2
    n = 0
    for p in paths:
        cap = cv2.VideoCapture(str(p))
        fps = cap.get(cv2.CAP_PROP_FPS); dur = cap.get(cv2.CAP_PROP_FRAME_COUNT) / fps
        cap.release()
        start = 0.0
        while start + CLIP_S <= dur + 1e-6:
            cap = cv2.VideoCapture(str(p))
            cap.set(cv2.CAP_PROP_POS_MSEC, start * 1000)
            frames = []
            while len(frames) < int(CLIP_S * FPS):
                ok, fr = cap.read()
                if not ok: break
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                if t + 1e-6 >= start + len(frames) / FPS:
                    frames.append(cv2.cvtColor(cv2.resize(fr, (SIZE, SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
            cap.release()
            np.save(out / f'{p.stem}_{int(start * 1000):06d}.npy', np.stack(frames))
            n += 1; start += STRIDE_S
    return n


def _decode_all(p: str) -> int:
    with av.open(p) as c:
        st = c.streams.video[0]; st.thread_type = 'AUTO'
        return sum(1 for _ in c.decode(st))


def decode_only(paths: list[Path], workers: int) -> int:
    if workers == 1: return sum(_decode_all(str(p)) for p in paths)
    with ProcessPoolExecutor(workers) as ex: return sum(ex.map(_decode_all, [str(p) for p in paths]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--videos', type=int, default=8); ap.add_argument('--seconds', type=float, default=20)
    ap.add_argument('--width', type=int, default=1280); ap.add_argument('--height', type=int, default=720)
    ap.add_argument('--fps', type=int, default=30)
    ap.add_argument('--cache', default='bench/results/prepare_videos', help='where the generated videos are kept')
    ap.add_argument('--json', default='bench/results/prepare_bench.json')
    a = ap.parse_args()
    raw = Path(a.cache) / f'{a.videos}x{a.seconds:g}s_{a.width}x{a.height}_{a.fps}fps'
    t = time.perf_counter(); paths = make_videos(raw, a.videos, a.seconds, a.fps, a.width, a.height)
    print(f'{len(paths)} videos of {a.seconds:g} s, {a.width}x{a.height} @ {a.fps} fps ready in {time.perf_counter() - t:.1f} s')
    cores = os.cpu_count() or 1
    res = dict(videos=len(paths), seconds=a.seconds, width=a.width, height=a.height, fps=a.fps, cores=cores)
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / 'seed').mkdir()
        t = time.perf_counter(); n_seed = seed_method(paths, tmp / 'seed'); res['seed_s'] = time.perf_counter() - t
        res['clips'] = n_seed
        params = load_params(overrides=dict(prepare=dict(clip_seconds=CLIP_S, stride_seconds=STRIDE_S, target_fps=FPS, size=SIZE,
                                                         valid_frac=0.0, test_frac=0.0, imbalance_warn_ratio=0.0)))
        for w in sorted({1, cores}):
            params['prepare']['workers'] = w
            t = time.perf_counter(); st = prepare_dataset(raw, tmp / f'ours{w}', params); res[f'ours_w{w}_s'] = time.perf_counter() - t
            res[f'ours_w{w}_clips'] = st['n_clips']
            t = time.perf_counter(); nf = decode_only(paths, w); res[f'decode_w{w}_s'] = time.perf_counter() - t
            res['frames_decoded'] = nf
    finally:
        shutil.rmtree(tmp)
    print(f"\nclips: seed {res['clips']}, ours {res['ours_w1_clips']} (ours adds an end-aligned last window per video)")
    print(f"{'method':<34}{'seconds':>9}{'clips/s':>10}")
    print(f"{'seed: OpenCV seek per clip (1 proc)':<34}{res['seed_s']:>9.2f}{res['clips'] / res['seed_s']:>10.1f}")
    for w in sorted({1, cores}):
        print(f"{f'ours: one decode pass ({w} proc)':<34}{res[f'ours_w{w}_s']:>9.2f}{res[f'ours_w{w}_clips'] / res[f'ours_w{w}_s']:>10.1f}")
        print(f"{f'decode only, PyAV ({w} proc)':<34}{res[f'decode_w{w}_s']:>9.2f}{'':>10}")
    for w in sorted({1, cores}):
        speed = (res[f'ours_w{w}_clips'] / res[f'ours_w{w}_s']) / (res['clips'] / res['seed_s'])
        over = res[f'ours_w{w}_s'] / res[f'decode_w{w}_s']
        res[f'speedup_vs_seed_w{w}'], res[f'ratio_to_decode_w{w}'] = speed, over
        print(f'{w} proc: ours vs seed {speed:.2f}x faster (target >= 3); ours / decode-only {over:.2f} (target <= 1.5)')
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == '__main__':
    sys.exit(main())
