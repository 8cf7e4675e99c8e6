"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does with Quarto, which these machines lack).

Markdown cells are copied; code cells marked `#| hide` are dropped; cells marked `#| echo: false` show only
their output; images go to README_files/. `--check` fails when README.md is out of date.
"""
import argparse, base64, hashlib, re, sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _directives(src: str) -> dict:
    out = {}
    for line in src.splitlines():
        m = re.match(r'#\|\s*([\w-]+)\s*:?\s*(.*)$', line.strip())
        if m: out[m.group(1)] = m.group(2).strip() or True
    return out


def render(nb_path: Path) -> tuple[str, dict[str, bytes]]:
    "README text and image files (name -> bytes)."
    nb = nbformat.read(nb_path, as_version=4)
    parts, images = ['<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->'], {}
    for cell in nb.cells:
        if cell.cell_type == 'markdown':
            parts.append(cell.source.strip())
            continue
        if cell.cell_type != 'code': continue
        d = _directives(cell.source)
        if d.get('hide') or d.get('include') == 'false': continue
        code = '\n'.join(l for l in cell.source.splitlines() if not l.strip().startswith('#|')).strip()
        if code and d.get('echo') != 'false': parts.append(f'```python\n{code}\n```')
        for out in cell.get('outputs', []):
            data = out.get('data', {})
            if 'image/png' in data:
                raw = base64.b64decode(data['image/png'])
                name = f'README_files/fig-{hashlib.sha1(raw).hexdigest()[:10]}.png'
                images[name] = raw
                parts.append(f'![]({name})')
            elif out.get('output_type') == 'stream' and d.get('output') != 'false':
                parts.append('```\n' + out['text'].rstrip() + '\n```')
    return '\n\n'.join(parts) + '\n', images


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--check', action='store_true', help='exit 1 if README.md or its images are out of date')
    a = ap.parse_args()
    text, images = render(ROOT/'nbs'/'index.ipynb')
    readme, img_dir = ROOT/'README.md', ROOT/'README_files'
    if a.check:
        stale = (not readme.exists() or readme.read_text() != text or
                 any(not (ROOT/n).exists() or (ROOT/n).read_bytes() != b for n, b in images.items()))
        if stale: print('README.md is out of date with nbs/index.ipynb: run `python tools/readme.py`', file=sys.stderr)
        return int(stale)
    img_dir.mkdir(exist_ok=True)
    for old in img_dir.glob('fig-*.png'):
        if f'README_files/{old.name}' not in images: old.unlink()
    for name, raw in images.items(): (ROOT/name).write_bytes(raw)
    tmp = readme.with_suffix('.md.tmp'); tmp.write_text(text); tmp.replace(readme)
    print(f'wrote {readme} and {len(images)} image(s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
