"""The Gradio demo, run for real: `accident demo` scored through `gradio_client`, and the page mounted at /ui of
`accident serve` driven in headless Chromium (upload, detect, read the verdict, save a screenshot)."""
import os
import shutil

import pytest

from accident_nbdev.app import example_videos
from accident_nbdev.predict import AccidentDetector, bundled_model_dir

from serving import ARTIFACTS, running

MODEL = bundled_model_dir()
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
    return example_videos(tmp_path_factory.mktemp('cache'))


def test_demo_with_gradio_client(examples):
    "The standalone demo answers its API like the detector does."
    from gradio_client import Client, handle_file
    with running(['demo', '--model', str(MODEL)], '/') as (url, _):
        client = Client(url, verbose=False)
        det = AccidentDetector(MODEL)
        for video in examples:
            verdict, plot, peak = client.predict(handle_file(str(video)), api_name='/analyse')
            local = det.predict_video(video)                  # the verdict is the model's own, as the API gives it
            assert verdict.startswith(f"## {local['label'].upper()}") and f"**{local['probability']:.3f}**" in verdict, verdict
            assert plot is not None and os.path.getsize(peak['path'] if isinstance(peak, dict) else peak) > 1000


@pytest.mark.skipif(not CHROMIUM and not os.environ.get('ACCIDENT_REQUIRE_BROWSER'), reason='no chromium (CI installs it)')
def test_demo_in_browser(examples):
    "A person's path through the page at /ui: upload the accident example, press Detect, see the verdict."
    assert CHROMIUM, 'chromium is required here (ACCIDENT_REQUIRE_BROWSER is set)'
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS/'demo-ui.png'
    with running(['serve', '--model', str(MODEL), '--log-dir', ''], '/ready') as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync'])
        try:
            page = browser.new_page(viewport=dict(width=1280, height=900))
            page.goto(url + '/ui/', wait_until='networkidle', timeout=60_000)
            page.locator('#video-in input[type=file]').set_input_files(str(examples[0]))
            page.wait_for_selector('#video-in video', timeout=60_000)          # uploaded and shown
            page.click('#detect')
            page.wait_for_function("document.querySelector('#verdict').innerText.includes('probability')", timeout=120_000)
            text = page.inner_text('#verdict')
            page.wait_for_selector('#peak img', timeout=30_000)
            page.screenshot(path=str(shot), full_page=True)
        finally: browser.close()
    local = AccidentDetector(MODEL).predict_video(examples[0])
    assert text.strip().startswith(local['label'].upper()) and f"{local['probability']:.3f}" in text and 'efficientnet' in text, text
    assert shot.stat().st_size > 20_000
