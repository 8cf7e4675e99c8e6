"""Where the training loader's time goes, stage by stage, in one run.

Builds the training `DataLoader` of the prepared data exactly as `train_model` does (balanced epochs, the
backbone's normalisation) and times, per batch of `--bs` clips of `--frames` frames:

- `items`: one process reading the clips (`ClipLoader` through fastai's item pipeline) and collating them: what
  one loader worker does for a batch;
- `start fastai`: a new epoch's iterator until its first batch arrives, the way fastai's `DataLoader` runs
  one (it starts the worker processes afresh for every epoch);
- `start kept`: the same for `ClipDL`, whose worker processes live across epochs;
- `workers`: the (kept) worker pool delivering collated (on CUDA also pinned) batches to the main process;
- `+transfer`: the same plus the copy to the device;
- `+tfms`: the whole loader as the training loop sees it (copy, then the batch transforms: to float,
  augmentation, normalisation);
- `tfms`: the batch transforms alone, on a batch already on the device.

On CUDA every timed stage is synchronised. The training loop waits for what the main process does serially
(receiving, copying, launching the batch transforms) plus whatever the worker pool cannot prefetch while the
step runs.

    python bench/loader_bench.py [--prepared data/prepared] [--device auto] [--frames 16] [--bs 32]
                                 [--workers 0,4,8] [--batches 30] [--pairs]

`--pairs` loads each sampled frame with the next stored one, as for `efficientnet_lite0_pairs` (2 x frames).

Prints a table and writes bench/results/loader_bench.json."""
import argparse
import json
import os
import time

import torch
from fastai.data.load import _loaders
from fastai.torch_core import to_device

from accident_nbdev.core import write_json_atomic
from accident_nbdev.learner import arch_info, clip_dataloaders
from accident_nbdev.training import pick_device


def _sync(dev: torch.device) -> None:
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def _fastai_batches(dl):
    "Batches as fastai's own `DataLoader.__iter__` makes them (new worker processes), before the copy and the batch transforms."
    dl.randomize(); dl.before_iter()
    dl._DataLoader__idxs = dl.get_idxs()
    yield from _loaders[dl.fake_l.num_workers == 0](dl.fake_l)


def _epoch(dl, device=None, tfms: bool = True):
    "One epoch of `dl` (a `ClipDL`: kept workers), optionally without the copy to the device or the batch transforms."
    old = dl.device, dl.after_batch
    dl.device = device
    if not tfms: dl.after_batch = lambda b: b
    try: yield from dl
    finally: dl.device, dl.after_batch = old


def _per_batch(it, n: int, dev: torch.device, skip: int = 3) -> tuple[float, float]:
    "Seconds to the first batch of iterator `it`, and mean seconds per batch over the next `n` (after `skip` more)."
    t0 = time.perf_counter()
    next(it); _sync(dev)
    first = time.perf_counter() - t0
    for _ in range(skip): next(it)
    _sync(dev)
    t = time.perf_counter()
    for _ in range(n): next(it)
    _sync(dev)
    return first, (time.perf_counter() - t) / n


def bench(prepared: str, device: str, frames: int, bs: int, workers: int, batches: int, pairs: bool = False) -> dict:
    dev = pick_device(device)
    mean, std = arch_info('efficientnet_lite0')['stats']
    dls = clip_dataloaders(prepared, n_frames=frames, bs=bs, mean=mean, std=std, num_workers=workers, device=dev,
                           seed=0, sampler='balanced', pairs=pairs)
    dl = dls.train
    n = min(batches, len(dl) - 4)
    res = dict(workers=workers, device=str(dev), bs=bs, frames=frames, pairs=pairs, batches=n)
    gen = dl.create_batches(dl.get_idxs())          # one process, no workers
    res['items_s'] = _per_batch(gen, n, torch.device('cpu'))[1]
    res['start_fastai_s'] = _per_batch(_fastai_batches(dl), 1, dev, skip=0)[0]
    next(iter(dl))                                   # starts the kept pool
    res['start_kept_s'], res['workers_s'] = _per_batch(_epoch(dl, None, False), n, dev)
    res['transfer_s'] = _per_batch(_epoch(dl, dev, False), n, dev)[1]
    res['loader_s'] = _per_batch(_epoch(dl, dev), n, dev)[1]
    b = to_device(next(_epoch(dl, None, False)), dev)
    for _ in range(3): dl.after_batch(b)
    _sync(dev); t = time.perf_counter()
    for _ in range(n): dl.after_batch(b)
    _sync(dev)
    res['tfms_s'] = (time.perf_counter() - t) / n
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--prepared', default='data/prepared')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--frames', type=int, default=16)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--workers', default='0', help='comma-separated worker counts to compare')
    ap.add_argument('--batches', type=int, default=30)
    ap.add_argument('--pairs', action='store_true', help='frame pairs (each sampled frame and the next stored one)')
    ap.add_argument('--out', default='bench/results/loader_bench.json')
    a = ap.parse_args()
    rows = []
    print(f"{'workers':>7} {'items':>8} {'start fastai':>12} {'start kept':>10} {'workers':>8} {'+transfer':>10} {'+tfms':>8} {'tfms':>8}   ms per batch"
          f" ({a.bs} clips x {a.frames} frames{' x 2 (pairs)' if a.pairs else ''})")
    for w in [int(x) for x in a.workers.split(',')]:
        r = bench(a.prepared, a.device, a.frames, a.bs, w, a.batches, a.pairs)
        rows.append(r)
        print(f"{w:>7} {r['items_s']*1e3:8.1f} {r['start_fastai_s']*1e3:12.1f} {r['start_kept_s']*1e3:10.1f} {r['workers_s']*1e3:8.1f} {r['transfer_s']*1e3:10.1f}"
              f" {r['loader_s']*1e3:8.1f} {r['tfms_s']*1e3:8.1f}", flush=True)
    info = dict(cpus=os.cpu_count(), torch=torch.__version__,
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    write_json_atomic(a.out, dict(machine=info, runs=rows))
    print(json.dumps(info))


if __name__ == '__main__':
    main()
