"""The OCR engine lets go of its models when idle and loads them again on the next page.

Real bundled PP-OCR models; a short ``idle_release_s`` so the test does not wait minutes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from appliance.bench.ingest import english_page, similarity
from appliance.config import KnowledgeConfig, Settings
from appliance.knowledge.ocr import Ocr, OcrSettings
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SENTENCE = "Annual fee waived in the first year"


def _image() -> Image.Image:
    image = Image.new("RGB", (900, 90), "white")
    font = ImageFont.truetype(FONT, 30) if Path(FONT).is_file() else ImageFont.load_default(30)
    ImageDraw.Draw(image).text((20, 25), SENTENCE, fill="black", font=font)
    return image


def _wait_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_idle_engine_is_released_and_reloaded() -> None:
    ocr = Ocr(Settings().models_dir, OcrSettings(), idle_release_s=1.0)
    assert not ocr.loaded and ocr.loads == 0
    page = english_page()
    assert similarity(page.text, ocr.recognize(page.image).text) > 0.99
    assert ocr.loaded and ocr.loads == 1
    # still there right after use; gone once idle for longer than the setting
    time.sleep(0.3)
    assert ocr.loaded
    assert _wait_until(lambda: not ocr.loaded, timeout=10), "not released after idling"
    assert ocr.releases == 1
    # the next page loads the models again and reads the same text
    assert SENTENCE in ocr.recognize(_image()).text
    assert ocr.loaded and ocr.loads == 2
    assert ocr.release() and not ocr.loaded and ocr.releases == 2
    assert not ocr.release()


def test_use_keeps_the_engine_and_concurrent_pages_survive_releases() -> None:
    ocr = Ocr(Settings().models_dir, OcrSettings(), idle_release_s=0.4)
    # pages closer together than the idle time: never released in between
    for _ in range(3):
        assert SENTENCE in ocr.recognize(_image()).text
        time.sleep(0.1)
    assert ocr.loads == 1 and ocr.releases == 0
    # threads with pauses around the idle time: releases and reloads race with pages
    errors: list[BaseException] = []
    texts: list[str] = []

    def worker(pause: float) -> None:
        try:
            for _ in range(3):
                texts.append(ocr.recognize(_image()).text)
                time.sleep(pause)
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(p,)) for p in (0.35, 0.45, 0.6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert len(texts) == 9 and all(SENTENCE in t for t in texts)
    assert _wait_until(lambda: not ocr.loaded, timeout=10)
    assert ocr.loads == ocr.releases, (ocr.loads, ocr.releases)


def test_config_key_sets_the_idle_time() -> None:
    assert Ocr(Path("models"), KnowledgeConfig()).idle_release_s == 120.0
    assert Ocr(Path("models"), KnowledgeConfig(ocr_idle_release_s=0)).idle_release_s == 0.0
    assert Ocr(Path("models"), OcrSettings()).idle_release_s == 0.0
    with pytest.raises(Exception, match="ocr_idle_release_s"):
        import msgspec

        msgspec.convert({"ocr_idle_release_s": -1}, KnowledgeConfig)


# In a fresh process: late in the suite a page partly reuses heap that earlier tests freed
# (1,100 -> 1,225 -> 1,151 MB in one run), which says nothing about the release.
_MEASURE = """
import json, time
from pathlib import Path
from appliance.bench.ingest import english_page
from appliance.config import Settings
from appliance.knowledge.ocr import Ocr, OcrSettings

def rss():
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1]) / 1024

ocr = Ocr(Settings().models_dir, OcrSettings(), idle_release_s=0.5)
before = rss()
ocr.recognize(english_page().image)  # a dense A4 page
loaded = rss()
deadline = time.monotonic() + 10
while ocr.loaded and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1)  # the releasing thread collects and trims the heap after it lets go
print(json.dumps({"before": before, "loaded": loaded, "released": rss(), "releases": ocr.releases}))
"""


def test_the_release_gives_the_memory_back() -> None:
    import json
    import os
    import subprocess
    import sys

    from appliance.config import PROJECT_ROOT

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    rss = json.loads(result.stdout.strip().splitlines()[-1])
    print("RSS MB:", rss)
    assert rss["releases"] == 1
    # measured: 36 MB before, 398 with the models and a page's buffers, 140 after the release
    grown, freed = rss["loaded"] - rss["before"], rss["loaded"] - rss["released"]
    assert freed > 100 and freed > 0.4 * grown, rss
