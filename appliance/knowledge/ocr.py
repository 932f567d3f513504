"""Local OCR: RapidOCR 3.x (PP-OCR det/rec/cls ONNX models under ``models/ocr``) on onnxruntime.

Chinese and English with one model pair. The engine loads on first use (or :meth:`Ocr.warm`),
runs on CUDA when onnxruntime offers it, and is serialized by a lock: one page at a time uses
every core anyway. After ``idle_release_s`` without a page the engine is dropped (its
onnxruntime sessions and their memory go) and it loads again on the next page. Lines come back in reading order (top-to-bottom, then left-to-right, text
segments on one visual row merged into one line; two columns of running text one after the
other) with a confidence each.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from appliance.config import KnowledgeConfig

DET_MODEL = "ocr/PP-OCRv6_det_small.onnx"
REC_MODEL = "ocr/PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ocr/ch_ppocr_mobile_v2.0_cls_mobile.onnx"


class OcrUnavailable(RuntimeError):
    """The OCR model files are missing (run ``salesboost models place``)."""

    code = "ocr_unavailable"


@dataclass(frozen=True)
class OcrSettings:
    """The knobs that decide OCR speed; :meth:`rapidocr_defaults` is RapidOCR out of the box.

    Measured on a dense A4 page at 150 DPI (``salesboost bench ingest``): recognition is ~90% of
    the time and costs in proportion to the width of the text lines once scaled to the model's
    48 px height, so ``squeeze`` narrows the page before OCR (boxes are mapped back; 0.6 keeps
    >= 0.9986 character accuracy on 10 pt, 7 pt and Chinese pages, 0.5 collapses); recognition
    batches of 2 pad less than 6 (~4 % faster); detection runs on a 1280 px long side (960 reads
    10 pt text as well, ~0.26 s faster, but loses 7 pt fine print: 0.9936 vs 0.9986); the
    direction classifier is off because rendered pages are upright (and on this page it flipped
    lines that were not).
    """

    threads: int = 0  # onnxruntime intra-op threads; 0 = one per core
    det_limit_side_len: int = 1280
    det_limit_type: str = "max"  # "max": cap the long side; "min": upscale so the short side >= len
    det_box_thresh: float = 0.5
    rec_batch: int = 2  # crops per recognition call: 2 was ~4 % faster than 6 (less padding)
    use_cls: bool = False
    mem_arena: bool = True
    squeeze: float = 0.6  # horizontal scale applied before OCR (1 = none)

    @classmethod
    def rapidocr_defaults(cls) -> OcrSettings:
        """RapidOCR 3.x's own defaults (its config.yaml): the baseline the bench compares with."""
        return cls(
            threads=-1,
            det_limit_side_len=736,
            det_limit_type="min",
            det_box_thresh=0.5,
            rec_batch=6,
            use_cls=True,
            mem_arena=False,
            squeeze=1.0,
        )

    @classmethod
    def from_config(cls, config: KnowledgeConfig) -> OcrSettings:
        """The settings the ``knowledge`` config section asks for."""
        return cls(
            threads=config.ocr_threads,
            det_limit_side_len=config.ocr_det_limit_side_len,
            use_cls=config.ocr_use_cls,
            squeeze=config.ocr_squeeze,
        )

    def params(self) -> dict[str, Any]:
        """These settings as RapidOCR ``params`` keys."""
        threads = self.threads or (os.cpu_count() or 1)
        return {
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.enable_cpu_mem_arena": self.mem_arena,
            "Det.limit_side_len": self.det_limit_side_len,
            "Det.limit_type": self.det_limit_type,
            "Det.box_thresh": self.det_box_thresh,
            "Rec.rec_batch_num": self.rec_batch,
            "Global.use_cls": self.use_cls,
        }


@dataclass(frozen=True)
class OcrLine:
    """One visual line: its text, box (x0, y0, x1, y1 in image pixels) and mean confidence."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


@dataclass(frozen=True)
class OcrPage:
    """The lines found on one image, in reading order."""

    lines: list[OcrLine]
    width: int
    height: int
    seconds: float

    @property
    def text(self) -> str:
        """The lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)

    @property
    def mean_confidence(self) -> float | None:
        """Mean line confidence weighted by line length; None when nothing was read."""
        weight = sum(len(line.text) for line in self.lines)
        if not weight:
            return None
        return sum(line.confidence * len(line.text) for line in self.lines) / weight


def _is_cjk(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def join_segments(left: str, right: str) -> str:
    """Join two pieces of one line: no space between CJK characters, one space otherwise."""
    if not left:
        return right
    if not right:
        return left
    if _is_cjk(left[-1]) or _is_cjk(right[0]):
        return left + right
    return f"{left} {right}"


@dataclass
class _Segment:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float


def _gutter(segments: list[_Segment], width: float) -> float | None:
    """The x of a column gutter that no narrow segment crosses, when both sides read as text columns."""
    narrow = [s for s in segments if s.x1 - s.x0 < 0.6 * width]
    if len(narrow) < 6:
        return None
    best: tuple[float, float] | None = None
    reach: float | None = None
    for segment in sorted(narrow, key=lambda s: s.x0):
        gap = segment.x0 - reach if reach is not None else 0.0
        if reach is not None and gap >= 0.03 * width and (best is None or gap > best[1] - best[0]):
            best = (reach, segment.x0)
        reach = segment.x1 if reach is None else max(reach, segment.x1)
    if best is None:
        return None
    cut = (best[0] + best[1]) / 2
    for side in ([s for s in narrow if s.x1 <= cut], [s for s in narrow if s.x0 >= cut]):
        if len(side) < 3:
            return None
        extent = max(s.x1 for s in side) - min(s.x0 for s in side)
        full = sum(1 for s in side if s.x1 - s.x0 >= 0.5 * extent)
        lengths = sorted(len(s.text) for s in side)
        if full < 0.6 * len(side) or lengths[len(lengths) // 2] < 15:
            return None  # short cells, not lines of running text: a table reads row by row
    return cut


def reading_order(segments: list[_Segment], width: float | None = None) -> list[OcrLine]:
    """Segments in reading order: text columns one after the other, then visual rows.

    A gutter that no narrow segment crosses splits the page into columns when both sides are
    running text (most lines fill their column); a segment spanning the gutter (a title, a
    footer) ends the band of columns above it. Without columns, segments are grouped into rows
    by vertical overlap, rows top-to-bottom, segments left-to-right (a table reads row by row).
    """
    if width is None:
        width = max((s.x1 for s in segments), default=0.0)
    cut = _gutter(segments, width) if segments else None
    if cut is None:
        return _rows(segments)
    lines: list[OcrLine] = []
    band: list[_Segment] = []
    for segment in sorted(segments, key=lambda s: s.y0):
        if segment.x0 < cut < segment.x1:  # spans the gutter: close the band above it
            lines += _columns(band, cut, width) + _rows([segment])
            band = []
        else:
            band.append(segment)
    return lines + _columns(band, cut, width)


def _columns(band: list[_Segment], cut: float, width: float) -> list[OcrLine]:
    left = [s for s in band if s.x1 <= cut]
    right = [s for s in band if s.x0 >= cut]
    return reading_order(left, cut) + reading_order(right, width) if band else []


def _rows(segments: list[_Segment]) -> list[OcrLine]:
    """Group segments into visual rows (vertical overlap), rows top-to-bottom, segments left-to-right."""
    rows: list[list[_Segment]] = []
    for segment in sorted(segments, key=lambda s: (s.y0 + s.y1) / 2):
        if rows:
            row = rows[-1]
            top = min(s.y0 for s in row)
            bottom = max(s.y1 for s in row)
            overlap = min(bottom, segment.y1) - max(top, segment.y0)
            height = min(bottom - top, segment.y1 - segment.y0)
            if height > 0 and overlap >= 0.5 * height:
                row.append(segment)
                continue
        rows.append([segment])
    lines = []
    for row in rows:
        row.sort(key=lambda s: s.x0)
        text = ""
        for segment in row:
            text = join_segments(text, segment.text.strip())
        weight = sum(len(s.text) for s in row) or 1
        confidence = sum(s.confidence * len(s.text) for s in row) / weight
        box = (
            min(s.x0 for s in row),
            min(s.y0 for s in row),
            max(s.x1 for s in row),
            max(s.y1 for s in row),
        )
        lines.append(OcrLine(text, box, float(confidence)))
    return [line for line in lines if line.text]


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise); no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Ocr:
    """RapidOCR with the bundled PP-OCR models, loaded lazily, one page at a time.

    ``idle_release_s`` > 0 drops the engine after that long without a page (a timer thread;
    the same lock as the pages, so a page in progress is never pulled from under itself) and
    the next page loads it again; ``loads`` and ``releases`` count both.
    """

    def __init__(
        self,
        models_dir: Path,
        settings: OcrSettings | KnowledgeConfig | None = None,
        *,
        device: str = "auto",
        idle_release_s: float | None = None,
    ) -> None:
        """Nothing loads here; pass ``Settings.knowledge`` (or OcrSettings) to tune the engine.

        ``idle_release_s`` defaults to ``knowledge.ocr_idle_release_s`` when the config is
        passed, else 0 (never release).
        """
        self.models_dir = Path(models_dir)
        if idle_release_s is None:
            idle_release_s = (
                settings.ocr_idle_release_s if isinstance(settings, KnowledgeConfig) else 0.0
            )
        if isinstance(settings, KnowledgeConfig):
            settings = OcrSettings.from_config(settings)
        self.settings = settings or OcrSettings()
        self.device = device
        self.idle_release_s = float(idle_release_s)
        self.loads = 0
        self.releases = 0
        self._engine: Any = None
        self._lock = threading.Lock()
        self._last_used = 0.0
        self._timer: threading.Timer | None = None

    @property
    def loaded(self) -> bool:
        """Whether the models are in memory now."""
        return self._engine is not None

    def _engine_locked(self) -> Any:
        """The engine, built if it is not loaded (the caller holds the lock)."""
        if self._engine is None:
            self._engine = self._build()
            self.loads += 1
        return self._engine

    def _touch_locked(self) -> None:
        """Note a use and (re)arm the idle timer (the caller holds the lock)."""
        self._last_used = time.monotonic()
        if self.idle_release_s <= 0:
            return
        if self._timer is not None:
            self._timer.cancel()
        timer = threading.Timer(self.idle_release_s, self._release_if_idle)
        timer.daemon = True
        timer.name = "ocr-idle-release"
        timer.start()
        self._timer = timer

    def _release_if_idle(self) -> None:
        with self._lock:
            if self._engine is None:
                return
            if time.monotonic() - self._last_used + 1e-3 < self.idle_release_s:
                return  # used since this timer was armed: a later timer decides
            self._drop_locked()

    def _drop_locked(self) -> None:
        self._engine = None
        self._timer = None
        self.releases += 1
        gc.collect()  # the sessions go now, not at some later collection
        _trim_heap()

    def release(self) -> bool:
        """Drop the models now (e.g. at shutdown); False when they were not loaded."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._engine is None:
                return False
            self._drop_locked()
            return True

    @property
    def model_paths(self) -> dict[str, Path]:
        """The three model files this engine uses."""
        return {
            "det": self.models_dir / DET_MODEL,
            "rec": self.models_dir / REC_MODEL,
            "cls": self.models_dir / CLS_MODEL,
        }

    @property
    def uses_cuda(self) -> bool:
        """Whether onnxruntime offers CUDA and the device setting allows it."""
        if self.device == "cpu":
            return False
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()

    def _build(self) -> Any:
        missing = [str(p) for p in self.model_paths.values() if not p.is_file()]
        if missing:
            raise OcrUnavailable(f"OCR model files missing: {', '.join(missing)}")
        from rapidocr import RapidOCR

        paths = self.model_paths
        params: dict[str, Any] = {
            "Global.log_level": "error",  # not "text detection result is empty" per blank page
            "Det.model_path": str(paths["det"]),
            "Rec.model_path": str(paths["rec"]),
            "Cls.model_path": str(paths["cls"]),
            "EngineConfig.onnxruntime.use_cuda": self.uses_cuda,
            **self.settings.params(),
        }
        return RapidOCR(params=params)

    def warm(self) -> None:
        """Load the models now (and run them once) instead of on the first page."""
        with self._lock:
            blank = np.full((64, 256, 3), 255, dtype=np.uint8)
            self._engine_locked()(blank)
            self._touch_locked()

    def recognize(self, image: Image.Image | np.ndarray[Any, Any]) -> OcrPage:
        """OCR one image; lines in reading order with their confidence."""
        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        picture = picture.convert("RGB")
        width, height = picture.size
        squeeze = self.settings.squeeze
        if squeeze != 1.0:
            picture = picture.resize((max(1, round(width * squeeze)), height), Image.Resampling.BOX)
        # RapidOCR expects OpenCV's BGR order for arrays
        bgr = np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])
        started = time.perf_counter()
        with self._lock:
            result = self._engine_locked()(bgr)
            self._touch_locked()
        seconds = time.perf_counter() - started
        segments = []
        if result is not None and getattr(result, "txts", None) and result.boxes is not None:
            for box, text, score in zip(result.boxes, result.txts, result.scores, strict=False):
                xs = [float(p[0]) / squeeze for p in box]
                ys = [float(p[1]) for p in box]
                segments.append(
                    _Segment(str(text), min(xs), min(ys), max(xs), max(ys), float(score))
                )
        return OcrPage(reading_order(segments, float(width)), int(width), int(height), seconds)
