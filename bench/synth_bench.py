"""Benchmark: generate the default synthetic dataset (params.yaml `synth`: 2200 videos of 8-12 s since session 35, 1100 before) and time it.

Target: <= 5 minutes on a 2-core machine. Prints the wall time, videos per minute and how many times faster
than real time the video is made. Run:  python bench/synth_bench.py
"""
import argparse, json, os, shutil, tempfile, time
from pathlib import Path

from accident_nbdev.core import load_params
from accident_nbdev.synth import synth_dataset


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n-videos', type=int, help='default: params.yaml synth.n_videos')
    ap.add_argument('--json', default='bench/results/synth_bench.json')
    a = ap.parse_args()
    params = load_params()
    p = params['synth']
    n = a.n_videos or p['n_videos']
    out = Path(tempfile.mkdtemp())/'raw'
    try:
        t = time.perf_counter()
        ann = synth_dataset(out, n, params['seed'], p['layout'], p['time_of_day'], p['weather'], p['scenarios'],
                            p['accident_frac'], [tuple(r) for r in p['resolutions']], p['frame_rates'], tuple(p['duration']), p['workers'])
        wall = time.perf_counter() - t
        size = sum(f.stat().st_size for f in out.rglob('*.mp4'))
    finally:
        shutil.rmtree(out.parent)
    video_s = float(ann.duration_s.sum())
    res = dict(videos=len(ann), cores=os.cpu_count(), wall_s=round(wall, 1), videos_per_min=round(len(ann) / wall * 60, 1),
               video_seconds=round(video_s), realtime_factor=round(video_s / wall, 2), mb=round(size / 1e6, 1),
               accident=int(ann.label.sum()), normal=int((ann.label == 0).sum()))
    print(f"{res['videos']} videos ({res['accident']} accident, {res['normal']} normal), {res['video_seconds']} s of video, "
          f"{res['mb']} MB, on {res['cores']} cores")
    print(f"wall time {res['wall_s']} s ({res['videos_per_min']} videos/min, {res['realtime_factor']}x real time); "
          f"target <= 300 s: {'met' if wall <= 300 else 'MISSED'}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
