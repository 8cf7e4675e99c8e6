#!/usr/bin/env bash
# GPU check of the training notebook: build the default data, time the loader stage by stage (bench/loader_bench.py),
# run nbs/03_train.ipynb through Papermill on CUDA, evaluate, and optionally compare more architectures with the
# same budget. Prints train.json/metrics summaries; copies train.json, profile.json, the training log and the
# evaluation (metrics.json, predictions.csv, onsets.csv) of each run to OUTDIR, and how well each model fits its own
# training windows against validation (bench/fit_bench.py, OUTDIR/NAME_fit.json).
# Usage (on a CUDA machine, from the project root): bash bench/gpu_train.sh [OUTDIR] [EPOCHS]
# Environment: DEVICE (default cuda), DATA (default data; finished DATA/raw and DATA/prepared are reused), RUNS (names to run,
# default efficientnet_lite0_pairs, the default arch; also efficientnet_lite0, efficientnet_lite0_motion, efficientnet_lite0_slowfast, small,
# r2plus1d_18), WORKERS (loader processes for training, default 12),
# LOADER_WORKERS (worker counts the loader benchmark compares, default 4,8,12; empty: skip it), SAMPLER (all), SEED (42),
# SIZE (frame size to prepare the clips at, e.g. 224; default: params.yaml's prepare.size, in DATA/prepared; another
# size goes to DATA/prepared_SIZE, made from the same videos).
# CONTEXT (seconds before each window the model also sees, default 4 as params.yaml; 0 = none).
# Where packages cannot be installed, pre-fetched wheels in .whl/ are unpacked to /tmp/site first.
set -euo pipefail
OUT=${1:-${OUT:-bench/results/gpu}}; EPOCHS=${2:-20}; DEVICE=${DEVICE:-cuda}; DATA=${DATA:-data}
RUNS=${RUNS:-efficientnet_lite0_pairs}; LOADER_WORKERS=${LOADER_WORKERS-4,8,12}; SAMPLER=${SAMPLER:-all}
PREPARED=$DATA/prepared${SIZE:+_$SIZE}
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c 'import fastai' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
ACC="python3 -c 'from accident_nbdev.cli import run; run()'"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c 'import torch, fastai; print("torch", torch.__version__, "fastai", fastai.__version__, "cuda", torch.cuda.is_available())'
t0=$(date +%s)
if [ ! -f "$PREPARED/clips.csv" ]; then
  [ -f "$DATA/raw/annotations.csv" ] || eval $ACC -q synth "$DATA/raw" --workers 0
  eval $ACC -q prepare "$DATA/raw" --out "$PREPARED" ${SIZE:+--size $SIZE}
fi
echo "data ready in $(( $(date +%s) - t0 )) s"
if [ -n "$LOADER_WORKERS" ]; then
  python3 bench/loader_bench.py --prepared "$PREPARED" --device "$DEVICE" --frames 16 --bs 32 \
    --workers "$LOADER_WORKERS" --out "$OUT/loader_bench.json" || echo "loader benchmark failed"
fi
python3 - "$OUT" "$EPOCHS" "$DEVICE" "$PREPARED" "$SAMPLER" $RUNS <<'EOF'
import json, sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import papermill as pm
out, epochs, device, prepared, sampler, names = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]).resolve(), sys.argv[5], sys.argv[6:]
from accident_nbdev.evaluate import evaluate_model
known = {'small': dict(arch='small', frames=16, bs=32, lr=3e-3),
         'efficientnet_lite0': dict(arch='efficientnet_lite0', frames=16, bs=32, lr=1e-3),
         'efficientnet_lite0_motion': dict(arch='efficientnet_lite0_motion', frames=16, bs=32, lr=1e-3),
         'efficientnet_lite0_slowfast': dict(arch='efficientnet_lite0_slowfast', frames=32, bs=32, lr=1e-3),
         'efficientnet_lite0_pairs': dict(arch='efficientnet_lite0_pairs', frames=16, bs=32, lr=1e-3),
         'r2plus1d_18': dict(arch='r2plus1d_18', frames=16, bs=32, lr=1e-3)}
if unknown := [n for n in names if n not in known]: sys.exit(f'unknown RUNS {unknown}; known: {", ".join(known)}')
runs = [(n, known[n]) for n in names]                      # in the order asked
for i, (name, kw) in enumerate(runs):
    d = Path('bench/results/models')/name
    t = time.time()
    params = dict(prepared=str(prepared), out=str(d.resolve()), epochs=epochs, device=device,
                  workers=int(__import__('os').environ.get('WORKERS', 12)) if device != 'cpu' else 0, dvclive=False, patience=epochs, sampler=sampler,
                  seed=int(__import__('os').environ.get('SEED', 42)),
                  context=float(__import__('os').environ.get('CONTEXT', 4.0)), context_frames=4, cached=False, **kw)   # pixel training
    try:
        if i == 0: pm.execute_notebook('nbs/03_train.ipynb', str(out/'train_gpu.ipynb'), parameters=params, kernel_name='python3',
                                       cwd='nbs', progress_bar=False)   # the notebook's own run
        else:
            from accident_nbdev.training import train_model
            train_model(**params, show_progress=False)
        m = evaluate_model(d, prepared, Path('bench/results/eval')/name, device=device)
        s = json.loads((d/'train.json').read_text())
        res = dict(run=name, wall_s=round(time.time() - t, 1), train_s=s['train_seconds'], best_valid_auroc=s['best_valid_auroc'],
                   profile=s['profile'], valid_clip_auroc=m['clip']['valid']['auroc'], test_clip_auroc=m['clip']['test']['auroc'], test_video_auroc=m['video']['test']['max']['auroc'],
                   onset=m['onset'], test_video_breakdown=m['breakdown'].get('scenario'))
    except Exception as e:
        res = dict(run=name, error=repr(e)[:500])
    print('RESULT', json.dumps(res), flush=True)
    for f in ('train.json', 'profile.json', 'train_log.csv'):
        if (d/f).exists(): (out/f'{name}_{f}').write_bytes((d/f).read_bytes())
    ev = Path('bench/results/eval')/name                     # window scores: onsets etc. can be recomputed here later
    for f in ('metrics.json', 'predictions.csv', 'onsets.csv'):
        if (ev/f).exists(): (out/f'{name}_eval_{f}').write_bytes((ev/f).read_bytes())
    (out/f'result_{name}.json').write_text(json.dumps(res, indent=1))
EOF
for name in $RUNS; do                                     # under- or overfitting: training windows vs validation
  grep -qs '"train_s"' "$OUT/result_$name.json" || continue     # this invocation trained it (no error)
  python3 bench/fit_bench.py --model "bench/results/models/$name" --prepared "$PREPARED" --device "$DEVICE" \
    --out "$OUT/${name}_fit.json" 2>&1 | grep -v -i warn || echo "fit check of $name failed"
done
