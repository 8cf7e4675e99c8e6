"""Copy the exported model (models/serve, made by `dvc repro`) and its drift baseline (models/baseline.csv) into the
package as its bundled demo model.

Run after a `dvc repro` whose model should ship with the package: `python tools/bundle_model.py`."""
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC, DST = ROOT/'models'/'serve', ROOT/'accident_nbdev'/'assets'/'model'

def main() -> int:
    card = SRC/'model_card.json'
    if not card.exists():
        print(f'no exported model in {SRC}: run `dvc repro` first', file=sys.stderr); return 2
    c = json.loads(card.read_text())
    q = c.get('quantized') or {}
    files = ['model_card.json', 'model_card.md', c['model']['file']] + ([q['file']] if q else []) \
        + [c['stages'][k]['file'] for k in ('encoder', 'head') if c.get('stages')] \
        + [q['stages'][k]['file'] for k in ('encoder', 'head') if q.get('stages')]     # the two stages in INT8
    tmp = DST.with_name(DST.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True); tmp.mkdir(parents=True)
    for f in files: shutil.copyfile(SRC/f, tmp/f)
    if (SRC.parent/'baseline.csv').exists(): shutil.copyfile(SRC.parent/'baseline.csv', tmp/'baseline.csv'); files.append('baseline.csv')
    else: print('no models/baseline.csv (dvc repro baseline): the bundled model has no drift baseline', file=sys.stderr)
    shutil.rmtree(DST, ignore_errors=True); tmp.rename(DST)
    print(f"bundled {c['version']} ({', '.join(files)}) into {DST.relative_to(ROOT)}")
    return 0

if __name__ == '__main__': sys.exit(main())
