"""Locust load test of the inference service (run Locust in its own process: its gevent monkey-patching breaks
other libraries when they share a process).

    accident serve --no-ui &
    locust -f bench/locustfile.py --headless -u 8 -r 8 -t 60s --host http://127.0.0.1:8000

Each user posts one clip after another to /predict. The clip is ACCIDENT_LOAD_FILE (a video or an .npz) when set,
else a default-size clip made here: one window of the served model (its card's frames and size, from GET /model),
as an .npz of uint8 frames, the seed's format."""
import io
import os
from pathlib import Path

import numpy as np
from locust import HttpUser, constant, task

_PAYLOAD = {}


def _payload(client) -> dict:
    "The request body, made once per process: ACCIDENT_LOAD_FILE, or one window of the served model as an .npz."
    if _PAYLOAD: return _PAYLOAD
    f = os.environ.get('ACCIDENT_LOAD_FILE')
    if f: _PAYLOAD.update(name=Path(f).name, data=Path(f).read_bytes()); return _PAYLOAD
    p = client.get('/model', name='/model').json()['preprocessing']
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (p['window_frames'], p['size'], p['size'], 3), dtype=np.uint8)
    b = io.BytesIO(); np.savez(b, frames=frames, fps=np.float32(p['fps']))
    _PAYLOAD.update(name='clip.npz', data=b.getvalue())
    return _PAYLOAD


class Scorer(HttpUser):
    "A client that scores clips back to back."
    wait_time = constant(0)

    def on_start(self):
        self.payload = _payload(self.client)

    @task
    def predict(self):
        with self.client.post('/predict', files={'file': (self.payload['name'], self.payload['data'])}, name='/predict',
                              catch_response=True) as r:
            if r.status_code != 200: r.failure(f'{r.status_code}: {r.text[:200]}')
            elif 'probability' not in r.json(): r.failure('no probability in the answer')
            else: r.success()
