"""Does a trained model fit its own training windows? Under- or overfitting, measured.

Scores a random sample of the training split's windows (ambiguous ones left out, as in training) and every
non-ambiguous validation window with the trained model, the way evaluation does (deterministic frame sampling, no
augmentation, ONNX Runtime on the CPU), and prints AUROC, log loss and the AUROC against each kind of negative
window for both. A model whose training AUROC is far above its validation AUROC overfits (more data or more
regularisation helps); one whose training AUROC is about as low as its validation AUROC underfits (more
optimisation or capacity helps: more epochs, more trainable stages, higher resolution).

    python bench/fit_bench.py [--model models] [--prepared data/prepared] [--n 1200] [--seed 0] [--device cpu] [--features] [--out FILE]

With --features a model trained on cached backbone features (`accident train --cached`, the default) is scored from
those features (train.json's feature_cache) instead of frames: the same scores to float16 precision, in a minute.

Prints a table and writes bench/results/fit_bench.json (or --out)."""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from accident_nbdev.core import AccidentError, write_json_atomic
from accident_nbdev.data import load_manifests
from accident_nbdev.evaluate import load_trained, negatives_auroc, predict_clips


def fit_rows(clips: pd.DataFrame, split: str, n: int | None, seed: int) -> pd.DataFrame:
    "The non-ambiguous windows of `split`; a random sample of `n` of them (class shares kept) when `n` is given."
    d = clips[(clips.split == split) & ~clips.ambiguous.astype(bool)]
    if d.label.nunique() < 2: raise AccidentError(f'the {split} split needs windows of both classes')
    if n is None or n >= len(d): return d
    frac = n / len(d)
    return pd.concat([g.sample(max(1, round(len(g) * frac)), random_state=seed) for _, g in d.groupby('label')])


def fit_summary(d: pd.DataFrame, videos: pd.DataFrame) -> dict:
    "AUROC, log loss and mean scores of windows `d` (with `p`), and the AUROC against each kind of negative."
    neg = negatives_auroc(d, videos)
    return dict(n=len(d), positives=int(d.label.sum()), auroc=float(roc_auc_score(d.label, d.p)),
                log_loss=float(log_loss(d.label, d.p.clip(1e-7, 1 - 1e-7), labels=[0, 1])),
                mean_p_accident=float(d.p[d.label == 1].mean()), mean_p_other=float(d.p[d.label == 0].mean()),
                negatives={r.negative: round(float(r.auroc), 4) for r in neg.itertuples()})


def feature_scores(model, info: dict, d: pd.DataFrame, bs: int = 64) -> np.ndarray:
    "Probabilities of the windows `d` from the cached backbone features the model was trained on (deterministic sampling)."
    import torch
    from accident_nbdev.learner import FeatureLoader
    cache = (info.get('feature_cache') or {}).get('cache')
    if not info.get('cached') or not cache or not Path(cache).is_dir():
        raise AccidentError(f'--features needs a model trained on cached features whose cache is still there '
                            f'(train.json: cached={info.get("cached")}, cache {cache}); leave out --features')
    load = FeatureLoader(cache, info['frames'], False, info['pairs'], info['context_window_frames'], info['context_frames'])
    model.cached, rows, out = True, d.to_dict('records'), []
    try:
        with torch.no_grad():
            for i in range(0, len(rows), bs):
                x = torch.stack([load.encodes(r) for r in rows[i:i + bs]]).as_subclass(torch.Tensor)
                out.append(model(x).softmax(-1)[:, 1].numpy())
    finally: model.cached = False
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='models', help='folder made by accident train (best.pth, train.json)')
    ap.add_argument('--prepared', default='data/prepared', help='the prepared folder it was trained on')
    ap.add_argument('--n', type=int, default=1200, help='training windows to score (0 = all)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu', help='cpu (ONNX Runtime), cuda, cuda:N')
    ap.add_argument('--features', action='store_true', help="score from the model's cached backbone features (a cached model)")
    ap.add_argument('--out', default='bench/results/fit_bench.json')
    a = ap.parse_args()
    model, info = load_trained(a.model, a.device)
    videos, clips = load_manifests(a.prepared)
    res = dict(model=a.model, prepared=a.prepared, arch=info['arch'], size=info['size'], scored_from='features' if a.features else 'frames')
    for split, n in (('train', a.n or None), ('valid', None)):
        d = fit_rows(clips, split, n, a.seed)
        d = d.assign(p=feature_scores(model, info, d) if a.features else
                     predict_clips(model, a.prepared, d, info['frames'], info['size'], info['mean'], info['std'],
                                   device=a.device, pairs=info['pairs'], context=info['context_window_frames'],
                                   n_context=info['context_frames']))
        res[split] = fit_summary(d, videos)
    res['gap'] = res['train']['auroc'] - res['valid']['auroc']
    kinds = sorted(set(res['train']['negatives']) | set(res['valid']['negatives']))
    print(f"{a.model} ({info['arch']}, {info['size'] or 'prepared size'} px)")
    print(f"{'':42s} {'train':>8s} {'valid':>8s}")
    print(f"{'windows (accident)':42s} {res['train']['n']:>4d} ({res['train']['positives']}) {res['valid']['n']:>4d} ({res['valid']['positives']})")
    for k in ('auroc', 'log_loss', 'mean_p_accident', 'mean_p_other'):
        print(f"{k:42s} {res['train'][k]:8.3f} {res['valid'][k]:8.3f}")
    for k in kinds:
        t, v = res['train']['negatives'].get(k, np.nan), res['valid']['negatives'].get(k, np.nan)
        print(f"  vs {k:38s} {t:8.3f} {v:8.3f}")
    print(f"train - valid AUROC: {res['gap']:+.3f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(a.out, res)


if __name__ == '__main__':
    main()
