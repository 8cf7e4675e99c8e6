#!/usr/bin/env bash
# Build what the serving image holds, without Docker: a fresh venv with docker/requirements-serve.txt and the
# package installed --no-deps (as the Dockerfile does), then run the image's CMD and its HEALTHCHECK against it
# and score a video. Used by .ci/run; there is no Docker engine on the CI machines.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SERVE_VENV:-/tmp/accident-serve-venv}
PORT=${PORT:-8123}
python -m venv --clear "$VENV"
"$VENV/bin/pip" install -q -r docker/requirements-serve.txt
"$VENV/bin/pip" install -q --no-deps .
for m in torch fastai timm papermill dvc; do
  if "$VENV/bin/python" -c "import $m" 2>/dev/null; then echo "$m is installed in the serving environment" >&2; exit 1; fi
done
work=$(mktemp -d)
cd "$work"   # outside the checkout: the image has no project folder, so the bundled model is served
export ACCIDENT_LOG_DIR="$work/logs" ACCIDENT_CACHE="$work/cache" GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
"$VENV/bin/accident" serve --host 127.0.0.1 --port "$PORT" > "$work/serve.log" 2>&1 &   # the image's CMD
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for i in $(seq 120); do
  if "$VENV/bin/python" -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$PORT/ready', timeout=4).status != 200)" 2>/dev/null; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat "$work/serve.log"; exit 1; fi
  sleep 1
done
"$VENV/bin/python" - "$PORT" <<'PY'
import sys, httpx
from accident_nbdev.app import example_videos
url = f'http://127.0.0.1:{sys.argv[1]}'
assert httpx.get(url + '/ready').json()['ready']
for v in example_videos():
    r = httpx.post(url + '/predict', files={'file': (v.name, v.read_bytes())}, timeout=120)
    assert r.status_code == 200, r.text
    print(f"{v.name}: {r.json()['label']} p={r.json()['probability']:.3f}")
assert httpx.get(url + '/ui/').status_code == 200
r = httpx.get(url + '/drift/json', timeout=120)   # two requests logged: too few to compare, and it says so
assert r.status_code == 409 and 'not enough logged data' in r.json()['detail'], r.text
assert 'accident_predictions_total' in httpx.get(url + '/metrics').text
print('serving environment: ok (no torch, healthcheck passes, /predict, /ui, /metrics and /drift/json answer)')
PY
