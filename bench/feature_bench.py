"""Training on cached backbone features: can a model fit *and* generalise when every epoch costs a tenth as much?

Session 28 found that the default model can fit its training windows (0.99 AUROC on 160 training videos after 8
epochs) but overfits them, while on 880 videos the 20-minute CPU budget buys only 2 epochs and it underfits. The
backbone's first five stages are the same for every epoch when they are frozen, so this experiment computes them
once per stored frame (EfficientNet-Lite0 with the wheel's ImageNet weights, up to the 112-channel stride-16 stage,
as the default model's backbone; ONNX Runtime) and caches them as float16, then trains only a spatio-temporal head
on them with fastai (`Learner`, `fit_one_cycle`, balanced epochs as `sampler: balanced`). What it keeps of the
default model: frame pairs (each sampled frame and the next stored one; the head sees the first frame's features
and their change to the second), temporal jitter in training, deterministic sampling in scoring. What it loses:
the pixel-level augmentation (a left-right flip of the feature maps stands in for it) and the fine-tuned last stage
and motion stream.

The library has since taken this path in (`accident train --cached --arch efficientnet_lite0_feature_pairs`, the
same cache and head, trained by `train_model` with its checkpoints and evaluated by `accident evaluate`); this script
stays as the record of session 28's experiment.

    python bench/feature_bench.py [--prepared data/prepared] [--cache DIR] [--epochs 12] [--hidden 64] [--out FILE]

Scores every validation and test window (ambiguous ones as label 0, as `accident evaluate` does) and prints the
clip AUROC, the video AUROC (max over windows), the AUROC against each kind of negative window, and the fit on a
sample of training windows; writes bench/results/feature_bench.json (or --out)."""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from fastai.callback.schedule import fit_one_cycle  # noqa: F401 (adds Learner.fit_one_cycle)
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import RocAucBinary
from sklearn.metrics import roc_auc_score

from accident_nbdev.core import write_json_atomic
from accident_nbdev.data import sample_indices
from accident_nbdev.evaluate import negatives_auroc
from accident_nbdev.learner import SpatioTemporalHead, accident_model, arch_info, cache_features, pair_change


class FeatureWindows(torch.utils.data.Dataset):
    "Windows as cached features of frame pairs `[2T,C,h,w]` (float32) with their label; jitter + flip when `train`."
    def __init__(self, rows: pd.DataFrame, feats: dict, n_frames: int = 8, train: bool = False, flip: float = 0.5,
                 seed: int = 0):
        self.rows, self.feats, self.n, self.train, self.flip = rows.reset_index(drop=True), feats, n_frames, train, flip
        self.rng = np.random.default_rng(seed)
    def __len__(self): return len(self.rows)
    def __getitem__(self, i):
        r = self.rows.iloc[i]
        idx = int(r.start_frame) + sample_indices(int(r.n_frames), self.n, self.train, self.rng, pairs=True)
        x = torch.from_numpy(self.feats[r.frames_file][idx].astype(np.float32))
        if self.train and self.rng.random() < self.flip: x = x.flip(-1)
        return x, torch.tensor(int(r.label))


class BalancedIdxDL(DataLoader):
    "Each epoch: every window of the rarer class and as many random ones of the other, shuffled (`sampler: balanced`)."
    def get_idxs(self):
        y = self.dataset.rows.label.values
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        few, many = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
        g = np.random.default_rng(self.rng.randrange(2 ** 31))          # fastai's seeded Python RNG drives NumPy's
        return g.permutation(np.concatenate([few, g.choice(many, len(few), replace=False)])).tolist()


class FeatureHead(nn.Module):
    "The spatio-temporal head on cached frame-pair features (as `efficientnet_lite0_feature_pairs` without its backbone)."
    def __init__(self, ch: int = 112, hidden: int = 64, dropout: float = 0.3):
        super().__init__(); self.head = SpatioTemporalHead(2 * ch, hidden=hidden, dropout=dropout)
    def forward(self, x): return self.head(pair_change(x))


def score(model: nn.Module, rows: pd.DataFrame, feats: dict, n_frames: int, bs: int = 64) -> np.ndarray:
    "Accident probability of every row (deterministic sampling, no flip)."
    ds, out = FeatureWindows(rows, feats, n_frames), []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(ds), bs):
            x = torch.stack([ds[j][0] for j in range(i, min(i + bs, len(ds)))])
            out.append(model(x).softmax(-1)[:, 1].numpy())
    return np.concatenate(out)


def split_report(d: pd.DataFrame, videos: pd.DataFrame) -> dict:
    "Clip AUROC (all windows), video AUROC (max window score), and the AUROC against each kind of negative."
    v = d.groupby('video_id').agg(y=('video_label', 'max'), p=('p', 'max'))
    neg = negatives_auroc(d, videos)
    return dict(windows=len(d), videos=len(v), clip_auroc=float(roc_auc_score(d.label, d.p)),
                video_auroc=float(roc_auc_score(v.y, v.p)), negatives=dict(zip(neg.negative, neg.auroc.round(4))))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--prepared', default='data/prepared')
    p.add_argument('--cache', default=None, help='feature cache folder (default PREPARED/../features_lite0)')
    p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--wd', type=float, default=0.01)
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--dropout', type=float, default=0.3)
    p.add_argument('--frames', type=int, default=8)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--out', default='bench/results/feature_bench.json')
    a = p.parse_args()
    prepared = Path(a.prepared)
    for f in ('clips.csv', 'videos.csv'):
        if not (prepared/f).exists(): raise SystemExit(f'no {f} in {prepared}: run `accident prepare` first')
    cache = Path(a.cache) if a.cache else prepared.parent/'features_lite0'
    clips, videos = pd.read_csv(prepared/'clips.csv'), pd.read_csv(prepared/'videos.csv')
    torch.manual_seed(a.seed)
    st = cache_features(prepared, clips.frames_file.unique(), accident_model('efficientnet_lite0'), cache, None,
                        *arch_info('efficientnet_lite0')['stats'])              # the learner's own cache (`--cached`)
    extract_s = st['seconds']
    feats = {f: np.load(cache/f'{Path(f).stem}.npy', mmap_mode='r') for f in clips.frames_file.unique()}
    tr = clips[(clips.split == 'train') & ~clips.ambiguous.astype(bool)]
    va = clips[(clips.split == 'valid') & ~clips.ambiguous.astype(bool)]
    if tr.label.nunique() < 2 or va.label.nunique() < 2:
        raise SystemExit('the training and validation splits each need windows of both classes')
    n_epoch = 2 * int(tr.label.value_counts().min())                  # the balanced epoch's length
    dl_tr = BalancedIdxDL(FeatureWindows(tr, feats, a.frames, train=True, seed=a.seed), bs=a.bs, n=n_epoch,
                          shuffle=True, drop_last=True)
    dl_va = DataLoader(FeatureWindows(va, feats, a.frames), bs=64)
    model = FeatureHead(feats[tr.frames_file.iloc[0]].shape[1], a.hidden, a.dropout)
    learn = Learner(DataLoaders(dl_tr, dl_va, device='cpu'), model, loss_func=CrossEntropyLossFlat(),
                    metrics=RocAucBinary(), wd=a.wd)
    t0 = time.perf_counter()
    learn.fit_one_cycle(a.epochs, a.lr)
    train_s = time.perf_counter() - t0
    res = dict(settings=vars(a), training_videos=int(tr.video_id.nunique()), extract_s=round(extract_s, 1),
               train_s=round(train_s, 1), log=[dict(zip(learn.recorder.metric_names[1:-1], map(float, v)))
                                              for v in learn.recorder.values])
    fit = tr.groupby('label', group_keys=False).sample(frac=min(1.0, 1200 / len(tr)), random_state=a.seed)
    res['train_fit_auroc'] = float(roc_auc_score(fit.label, score(model, fit, feats, a.frames)))
    for split in ('valid', 'test'):
        d = clips[clips.split == split].copy()
        if d.empty: continue
        d['p'] = score(model, d, feats, a.frames)
        res[split] = split_report(d, videos)
    print(f"{res['training_videos']} training videos, features cached in {extract_s:.0f} s, trained {a.epochs} epochs "
          f"in {train_s:.0f} s; fit on training windows AUROC {res['train_fit_auroc']:.3f}")
    for split in ('valid', 'test'):
        if split not in res: continue
        r = res[split]
        print(f"{split}: clip AUROC {r['clip_auroc']:.3f} ({r['windows']} windows), video AUROC {r['video_auroc']:.3f} "
              f"({r['videos']} videos)")
        for k, v in r['negatives'].items(): print(f'  vs {k:<40} {v:.3f}')
    write_json_atomic(Path(a.out), res)


if __name__ == '__main__':
    main()
