"""Training-step time of the default model in the two memory layouts, in one run.

One forward/backward/AdamW step of EfficientNet-Lite0 (ImageNet weights) + the spatio-temporal head on a random
batch (16 clips x 8 frames x 112 px by default), with 2, 3 and 4 backbone stages frozen, the backbone stored
contiguous (NCHW) or channels-last (NHWC). Layouts are timed alternately so that a busy machine slows both alike.

    python bench/step_bench.py [--bs 16] [--frames 8] [--size 112] [--repeats 5] [--threads 2]

Prints a table and writes bench/results/step_bench.json."""
import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from accident_nbdev.core import write_json_atomic
from accident_nbdev.learner import ClipModel, SpatioTemporalHead, efficientnet_lite0


def lite0_model(channels_last: bool, freeze: int) -> ClipModel:
    "The default `efficientnet_lite0` clip model (as `accident_model` builds it), in the layout asked for."
    b = efficientnet_lite0(pretrained=True)
    body = nn.Sequential(nn.Sequential(b.conv_stem, b.bn1), *b.blocks[:5])
    return ClipModel(body, SpatioTemporalHead(112), channels_last=channels_last).freeze(freeze).train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--frames', type=int, default=8)
    ap.add_argument('--size', type=int, default=112)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.bs, a.frames, 3, a.size, a.size)
    y = torch.randint(0, 2, (a.bs,))
    rows = []
    for freeze in (2, 3, 4):
        runs = {}
        for cl in (False, True):
            m = lite0_model(cl, freeze)
            opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], 1e-3)
            runs[cl] = (m, opt, [])

        def step(m, opt):
            t = time.perf_counter()
            loss = nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return time.perf_counter() - t
        for cl, (m, opt, _) in runs.items(): step(m, opt)            # warm-up
        for _ in range(a.repeats):
            for cl, (m, opt, ts) in runs.items(): ts.append(step(m, opt))
        med = {cl: statistics.median(ts) for cl, (_, _, ts) in runs.items()}
        rows.append(dict(freeze=freeze, contiguous_s=round(med[False], 3), channels_last_s=round(med[True], 3),
                         speedup=round(med[False] / med[True], 2)))
        print(f"freeze {freeze}: contiguous {med[False]:.2f} s, channels-last {med[True]:.2f} s per step "
              f"({med[False] / med[True]:.2f}x)", flush=True)
    out = Path(__file__).parent/'results'/'step_bench.json'
    out.parent.mkdir(exist_ok=True)
    write_json_atomic(out, dict(bs=a.bs, frames=a.frames, size=a.size, repeats=a.repeats, threads=a.threads,
                                torch=torch.__version__, rows=rows))
    print(f'-> {out}')


if __name__ == '__main__':
    main()
