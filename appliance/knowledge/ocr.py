"""Local OCR: RapidOCR 3.x (PP-OCR det/rec/cls ONNX models under ``models/ocr``) on onnxruntime.

Chinese and English with one model pair. RapidOCR detects the text lines; each line is then cut
from the full page and recognized here at its own width (narrower on a page that reads as CJK;
see :class:`OcrSettings`). The engine loads on first use (or :meth:`Ocr.warm`), runs on CUDA
when onnxruntime offers it, and is serialized by a lock: one page at a time uses every core
anyway. After ``idle_release_s`` without a page the engine is dropped (its
onnxruntime sessions and their memory go) and it loads again on the next page. Lines come back in reading order (top-to-bottom, then left-to-right, text
segments on one visual row merged into one line; two columns of running text one after the
other) with a confidence each.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import threading
import time
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from appliance.config import KnowledgeConfig

DET_MODEL = "ocr/PP-OCRv6_det_small.onnx"
REC_MODEL = "ocr/PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ocr/ch_ppocr_mobile_v2.0_cls_mobile.onnx"
REC_HEIGHT = 48  # the recognition model's input height
# The Latin head: a time step whose best Latin logit is below this is checked against the whole
# head (bundled PP-OCRv6 small: Latin steps of the bench pages 16.4 at the 1st percentile, 18.2
# at the 5th; steps where the whole head's best is a CJK character 17.3 at most, median 7.4)
LATIN_HEAD_SURE_LOGIT = 19.0
# a line read with the Latin head's columns below this confidence is decoded with the whole head
LATIN_HEAD_MIN_CONFIDENCE = 0.9
REC_MIN_WIDTH = 320  # RapidOCR pads every recognition batch to at least the model's 48x320


class OcrUnavailable(RuntimeError):
    """The OCR model files are missing (run ``salesboost models place``)."""

    code = "ocr_unavailable"


@dataclass(frozen=True)
class OcrSettings:
    """The knobs that decide OCR speed; :meth:`rapidocr_defaults` is RapidOCR out of the box.

    Measured on dense A4 pages at 150 DPI (``salesboost bench ingest``): recognition is ~90% of
    the time and costs in proportion to the width of each text line once scaled to the model's
    48 px height (CTC needs time steps per character). Detection runs on the page narrowed by
    ``squeeze`` and on a 1280 px long side (960 loses 7 pt fine print); each line is then cut
    from the full-resolution page and narrowed on its own (``per_line``): Latin lines by
    ``squeeze`` (0.55 already merges doubled letters in some fonts: "fee" -> "fe"), and on a
    page whose sample lines read as Chinese/Japanese/Korean by ``squeeze_cjk`` (square glyphs
    need about half the width per character that Latin letters need).
    The direction classifier is off because rendered pages are upright (on the 7 pt page it
    flipped lines that were not).
    """

    threads: int = 0  # onnxruntime threads; 0 = one per core
    det_limit_side_len: int = 1280
    det_limit_type: str = "max"  # "max": cap the long side; "min": upscale so the short side >= len
    det_box_thresh: float = 0.5
    # crops per recognition call: per line 1 (no padding) beat 2 by 2-4 %; RapidOCR's own
    # pipeline (per_line False) was ~4 % faster at 2 than 6
    rec_batch: int = 1
    use_cls: bool = False
    mem_arena: bool = True
    squeeze: float = 0.6  # horizontal scale of the page for detection and of Latin lines (1 = none)
    per_line: bool = True  # False: RapidOCR's own pipeline on the page narrowed by `squeeze`
    squeeze_cjk: float = 0.4  # every line of a page whose sample reads as CJK
    sample_lines: int = 4  # lines read at the Latin width first to tell a CJK page
    rec_workers: int = 0  # per-line recognition: 0 = a single-threaded worker per core
    split_head: bool = True  # run the classifier head apart (its Latin columns on Latin pages)

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
            per_line=False,
        )

    @classmethod
    def from_config(cls, config: KnowledgeConfig) -> OcrSettings:
        """The settings the ``knowledge`` config section asks for."""
        return cls(
            threads=config.ocr_threads,
            det_limit_side_len=config.ocr_det_limit_side_len,
            use_cls=config.ocr_use_cls,
            squeeze=config.ocr_squeeze,
            squeeze_cjk=config.ocr_squeeze_cjk,
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

    def line_squeeze(self, cjk: bool) -> float:
        """The horizontal scale of a cut-out line: Latin, or on a page that reads as CJK."""
        return min(self.squeeze_cjk, self.squeeze) if cjk else self.squeeze


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
    cjk: bool = False  # its sample lines read as CJK (the other lines were read narrower)

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


def _mostly_cjk(texts: Iterable[str]) -> bool:
    """Whether these lines are mostly CJK characters (at least 8 characters read, 80 % CJK)."""
    chars = [c for text in texts for c in text if not c.isspace()]
    return len(chars) >= 8 and sum(_is_cjk(c) for c in chars) >= 0.8 * len(chars)


def _needs_latin_width(text: str, confidence: float) -> bool:
    """A line read at the CJK width that should be read again at the Latin width.

    Latin letters and digits need about twice the width per character that CJK glyphs do; a
    line with many of them, or one read with low confidence, is read again.
    """
    chars = [c for c in text if not c.isspace()]
    latin = sum(1 for c in chars if c.isascii() and c.isalnum())
    return confidence < 0.9 or latin > max(3, 0.2 * len(chars))


def _rec_width(crop: np.ndarray[Any, Any], squeeze: float) -> int:
    """The width of a cut-out line once scaled to the model's height and narrowed by ``squeeze``."""
    height, width = int(crop.shape[0]), int(crop.shape[1])
    return max(8, math.ceil(REC_HEIGHT * width * squeeze / max(height, 1)))


def _rec_input(crop: np.ndarray[Any, Any], width: int) -> np.ndarray[Any, Any]:
    """One cut-out line resized to the model's height and ``width``, normalized to [-1, 1]."""
    import cv2

    resized = cv2.resize(crop, (width, REC_HEIGHT))
    array: np.ndarray[Any, Any] = resized.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return array


def _split_head(
    path: Path,
) -> tuple[bytes, np.ndarray[Any, Any], np.ndarray[Any, Any], list[str]] | None:
    """The recognition model without its classifier head, the head's weight and bias, its keys.

    The head (the last MatMul to ``classes`` outputs, then Add / Identity / Softmax) runs as
    its own small graph (:func:`_head_models`), so that a Latin page can use only the Latin
    columns of it (~1,700 of 18,710). None when the model does not end that way (it then runs
    whole).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    keys = next((p.value for p in model.metadata_props if p.key == "character"), None)
    if keys is None:
        return None
    characters = _ctc_characters(keys)
    classes = len(characters)
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    if not matmuls:
        return None
    head = matmuls[-1]
    weight = numpy_helper.to_array(weights[head.input[1]])
    if weight.ndim != 2 or weight.shape[1] != classes:
        return None
    downstream = set(head.output)
    tail = []
    keep = []
    for node in graph.node:
        if node is head or any(i in downstream for i in node.input):
            downstream.update(node.output)
            tail.append(node)
        else:
            keep.append(node)
    if any(n.op_type not in ("MatMul", "Add", "Identity", "Softmax") for n in tail):
        return None
    if not all(o.name in downstream for o in graph.output):
        return None
    bias = np.zeros(classes, dtype=np.float32)
    for node in tail:
        if node.op_type == "Add":
            bias = bias + np.asarray(
                numpy_helper.to_array(weights[next(i for i in node.input if i in weights)]),
                dtype=np.float32,
            )
    del graph.node[:]
    graph.node.extend(keep)
    del graph.output[:]
    graph.output.append(
        onnx.helper.make_tensor_value_info(head.input[0], onnx.TensorProto.FLOAT, None)
    )
    used = {i for n in keep for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    features: bytes = model.SerializeToString()
    return features, np.ascontiguousarray(weight, dtype=np.float32), bias, characters


def _ctc_characters(keys: str) -> list[str]:
    """The recognizer's classes from its ``character`` metadata: CTC blank first, space last."""
    return ["", *keys.splitlines(), " "]


def _head_models(
    weight: np.ndarray[Any, Any], bias: np.ndarray[Any, Any], latin: np.ndarray[Any, Any]
) -> tuple[bytes, bytes]:
    """Two small ONNX graphs on the recognizer's features: the whole head and the Latin head
    (logits over every character, and over the Latin columns only)."""
    from onnx import TensorProto, helper, numpy_helper

    def model(weight: np.ndarray[Any, Any], bias: np.ndarray[Any, Any]) -> bytes:
        graph = helper.make_graph(
            [
                helper.make_node("MatMul", ["features", "w"], ["m"]),
                helper.make_node("Add", ["m", "b"], ["logits"]),
            ],
            "head",
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, None, None])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
        )
        built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        built.ir_version = 8
        result: bytes = built.SerializeToString()
        return result

    return model(weight, bias), model(np.ascontiguousarray(weight[:, latin]), bias[latin])


def _ctc(
    logits: np.ndarray[Any, Any], labels: np.ndarray[Any, Any] | None, characters: list[str]
) -> tuple[str, float]:
    """Greedy CTC decoding of one line's logits (time x classes): text and mean confidence."""
    best = logits.argmax(axis=1)
    keep = best != 0  # 0 is the CTC blank
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    rows = logits[keep]
    probs = 1.0 / np.exp(rows - rows.max(axis=1, keepdims=True)).sum(axis=1)
    picked = best[keep] if labels is None else labels[best[keep]]
    return "".join(characters[i] for i in picked), float(probs.mean())


def _ctc_probs(probs: np.ndarray[Any, Any], characters: list[str]) -> tuple[str, float]:
    """Greedy CTC decoding of one line's probabilities (time x classes)."""
    best = probs.argmax(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    picked = best[keep]
    confidence = probs[np.flatnonzero(keep), picked].mean()
    return "".join(characters[i] for i in picked), float(confidence)


class _Recognizer:
    """PP-OCR line recognition on onnxruntime: width-sorted batches, each line at its own width.

    On CPU it runs one single-threaded worker per core, each on its own batches (less idle
    time than one run spread over the cores), and runs the classifier head as its own graph: on
    a Latin page only its Latin columns (the head over all 18,710 characters is ~12 % of the
    model's time). The time steps whose best Latin logit is low (``LATIN_HEAD_SURE_LOGIT``) go
    through the whole head too, and a line where any of them is a character outside the Latin
    columns (or that reads with low confidence) is decoded with the whole head. (Checking every
    third time step instead missed CJK words in English lines: their glyphs can be exactly 3
    time steps apart, all between the checked steps.) The worker threads live as long as the
    engine.
    """

    def __init__(self, model: Path, settings: OcrSettings, cuda: bool) -> None:
        import onnxruntime

        cores = settings.threads if settings.threads > 0 else (os.cpu_count() or 1)
        self.workers = 1 if cuda else min(settings.rec_workers or cores, cores)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        options.enable_cpu_mem_arena = settings.mem_arena
        options.intra_op_num_threads = max(1, cores // self.workers)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if cuda:
            providers.insert(0, "CUDAExecutionProvider")
        split = None if cuda or not settings.split_head else _split_head(model)
        self.head: Any = None  # onnxruntime session: features -> logits over every character
        if split is None:
            self.session = onnxruntime.InferenceSession(str(model), options, providers=providers)
            keys = self.session.get_modelmeta().custom_metadata_map["character"]
            self.characters = _ctc_characters(keys)
        else:
            features, weight, bias, self.characters = split
            self.session = onnxruntime.InferenceSession(features, options, providers=providers)
            latin = np.array(
                [0]
                + [
                    i
                    for i, c in enumerate(self.characters)
                    if len(c) == 1 and ord(c) < 0x3000 and not _is_cjk(c)
                ]
            )
            self.latin_labels = latin
            self.is_latin = np.zeros(len(self.characters), dtype=bool)
            self.is_latin[latin] = True
            whole_head, latin_head = _head_models(weight, bias, latin)
            self.head = onnxruntime.InferenceSession(whole_head, options, providers=providers)
            self.latin_head = onnxruntime.InferenceSession(latin_head, options, providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.batch = max(1, settings.rec_batch)
        self.pool: ThreadPoolExecutor | None = None
        if self.workers > 1:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ocr-rec")

    def _decode(self, features: np.ndarray[Any, Any], latin: bool) -> list[tuple[str, float]]:
        """The lines' text from their features (lines x time x channels) through the head."""
        if not latin:
            logits = self.head.run(None, {"features": features})[0]
            return [_ctc(line, None, self.characters) for line in logits]
        latin_logits = self.latin_head.run(None, {"features": features})[0]
        # the steps the Latin columns are unsure of: is the whole head's best another script?
        unsure = latin_logits.max(axis=2) < LATIN_HEAD_SURE_LOGIT
        other = np.zeros(len(features), dtype=bool)
        if unsure.any():
            logits = self.head.run(None, {"features": features[unsure][None]})[0][0]
            outside = ~self.is_latin[logits.argmax(axis=1)]
            other[np.nonzero(unsure)[0][outside]] = True
        results = []
        for k in range(len(features)):
            text, confidence = _ctc(latin_logits[k], self.latin_labels, self.characters)
            if not other[k] and confidence >= LATIN_HEAD_MIN_CONFIDENCE:
                results.append((text, confidence))
            else:  # another script, or unsure: the whole head for this line
                results.extend(self._decode(features[k : k + 1], False))
        return results

    def _run(
        self, crops: list[np.ndarray[Any, Any]], widths: list[int], latin: bool
    ) -> list[tuple[str, float]]:
        """Read one batch of cut-out lines, each resized to its width (padded to the widest)."""
        width = max(REC_MIN_WIDTH, *widths)
        tensor = np.zeros((len(crops), 3, REC_HEIGHT, width), dtype=np.float32)
        for k, (crop, line_width) in enumerate(zip(crops, widths, strict=True)):
            tensor[k, :, :, :line_width] = _rec_input(crop, line_width)
        output = self.session.run(None, {self.input: tensor})[0]
        if self.head is None:  # the whole model: probabilities, already softmaxed
            return [_ctc_probs(line, self.characters) for line in output]
        return self._decode(output, latin)

    def __call__(
        self, crops: list[np.ndarray[Any, Any]], squeeze: float, latin: bool = False
    ) -> list[tuple[str, float]]:
        """Read cut-out lines (BGR) narrowed by ``squeeze``: text and confidence each, in order.

        ``latin``: the page reads as Latin, so the head's Latin columns are tried first.
        """
        widths = [_rec_width(crop, squeeze) for crop in crops]
        order = sorted(range(len(crops)), key=lambda i: widths[i])
        batches = [order[i : i + self.batch] for i in range(0, len(order), self.batch)]
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)

        def run(batch: list[int]) -> None:
            decoded = self._run([crops[i] for i in batch], [widths[i] for i in batch], latin)
            for i, result in zip(batch, decoded, strict=True):
                results[i] = result

        if self.pool is None or len(batches) == 1:
            for batch in batches:
                run(batch)
        else:
            list(self.pool.map(run, batches))
        return results

    def close(self) -> None:
        """Stop the worker threads (the engine is being dropped)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _detector(params: dict[str, Any]) -> Any:
    """RapidOCR for detection only: it does not cut the lines out of the narrowed page.

    The lines are cut from the full page here; RapidOCR's own cutting cost ~0.02 s a page.
    """
    from rapidocr import RapidOCR

    class Detector(RapidOCR):
        def crop_text_regions(self, img: Any, det_boxes: Any) -> list[Any]:
            return []

    return Detector(params=params)


@dataclass
class _Engine:
    """RapidOCR (detection, and the direction classifier) and, per line, our recognizer."""

    rapid: Any
    rec: _Recognizer | None

    def __call__(self, image: np.ndarray[Any, Any]) -> Any:
        """Run RapidOCR's whole pipeline on a BGR image (warming, and the RapidOCR path)."""
        return self.rapid(image)


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
        self._engine: _Engine | None = None
        self._lock = threading.Lock()
        self._last_used = 0.0
        self._timer: threading.Timer | None = None

    @property
    def loaded(self) -> bool:
        """Whether the models are in memory now."""
        return self._engine is not None

    def _engine_locked(self) -> _Engine:
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
        if self._engine is not None and self._engine.rec is not None:
            self._engine.rec.close()
        self.releases += 1  # before `loaded` turns False: a watcher sees both at once
        self._timer = None
        self._engine = None
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

    def _build(self) -> _Engine:
        missing = [str(p) for p in self.model_paths.values() if not p.is_file()]
        if missing:
            raise OcrUnavailable(f"OCR model files missing: {', '.join(missing)}")
        from rapidocr import RapidOCR

        paths = self.model_paths
        cuda = self.uses_cuda
        params: dict[str, Any] = {
            "Global.log_level": "error",  # not "text detection result is empty" per blank page
            "Det.model_path": str(paths["det"]),
            "Rec.model_path": str(paths["rec"]),
            "Cls.model_path": str(paths["cls"]),
            "EngineConfig.onnxruntime.use_cuda": cuda,
            **self.settings.params(),
        }
        if not self.settings.per_line:
            return _Engine(RapidOCR(params=params), None)
        # RapidOCR detects (and classifies direction); lines are recognized here, each at its width
        params.update({"Global.use_rec": False, "Global.use_cls": False})
        return _Engine(_detector(params), _Recognizer(paths["rec"], self.settings, cuda))

    def warm(self) -> None:
        """Load the models now (and run them once) instead of on the first page."""
        with self._lock:
            blank = np.full((64, 256, 3), 255, dtype=np.uint8)
            engine = self._engine_locked()
            engine(blank)
            if engine.rec is not None:
                engine.rec([blank[:48]], 1.0)
            self._touch_locked()

    def recognize(self, image: Image.Image | np.ndarray[Any, Any]) -> OcrPage:
        """OCR one image; lines in reading order with their confidence."""
        started = time.perf_counter()
        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        if picture.mode != "RGB":
            picture = picture.convert("RGB")
        width, height = picture.size
        squeeze = self.settings.squeeze
        import cv2

        # RapidOCR expects OpenCV's BGR order for arrays
        full = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR)
        bgr = full
        if squeeze != 1.0:
            narrow = picture.resize((max(1, round(width * squeeze)), height), Image.Resampling.BOX)
            bgr = cv2.cvtColor(np.asarray(narrow), cv2.COLOR_RGB2BGR)
        with self._lock:
            engine = self._engine_locked()
            cjk = False
            if engine.rec is None:
                segments = self._rapidocr_segments(engine(bgr), squeeze)
            else:
                segments, cjk = self._line_segments(engine, bgr, full)
            self._touch_locked()
        seconds = time.perf_counter() - started
        lines = reading_order(segments, float(width))
        return OcrPage(lines, int(width), int(height), seconds, cjk)

    @staticmethod
    def _rapidocr_segments(result: Any, squeeze: float) -> list[_Segment]:
        """Segments from RapidOCR's own result on the narrowed page (boxes mapped back)."""
        segments = []
        if result is not None and getattr(result, "txts", None) and result.boxes is not None:
            for box, text, score in zip(result.boxes, result.txts, result.scores, strict=False):
                xs = [float(p[0]) / squeeze for p in box]
                ys = [float(p[1]) for p in box]
                segments.append(
                    _Segment(str(text), min(xs), min(ys), max(xs), max(ys), float(score))
                )
        return segments

    def _read_lines(
        self, rec: _Recognizer, crops: list[np.ndarray[Any, Any]]
    ) -> tuple[list[tuple[str, float]], bool]:
        """Read the cut-out lines; whether the page reads as CJK.

        A few lines spread over the page are read at the Latin width first (with the Latin
        head, which hands a line with other characters to the whole head); when they are mostly
        CJK the other lines are read at ``squeeze_cjk`` and any of them that reads as mostly
        Latin, or with low confidence, is read again at the Latin width.
        """
        settings = self.settings

        def read(indices: list[int], cjk: bool, latin: bool) -> list[tuple[str, float]]:
            return rec([crops[i] for i in indices], settings.line_squeeze(cjk), latin)

        count = len(crops)
        sample = sorted(
            {round(x) for x in np.linspace(0, count - 1, min(count, settings.sample_lines))}
        )
        results: dict[int, tuple[str, float]] = dict(
            zip(sample, read(sample, False, True), strict=True)
        )
        cjk = _mostly_cjk(text for text, _ in results.values())
        rest = [i for i in range(count) if i not in results]
        results.update(zip(rest, read(rest, cjk, not cjk), strict=True))
        if cjk and settings.squeeze_cjk < settings.squeeze:
            again = [i for i in rest if _needs_latin_width(*results[i])]
            if again:
                results.update(zip(again, read(again, False, False), strict=True))
        return [results[i] for i in range(count)], cjk

    def _line_segments(
        self, engine: _Engine, narrow: np.ndarray[Any, Any], full: np.ndarray[Any, Any]
    ) -> tuple[list[_Segment], bool]:
        """Detect on the narrowed page, cut each line from the full page, read it at its width."""
        from rapidocr.utils.process_img import get_rotate_crop_image

        settings = self.settings
        rec = engine.rec
        assert rec is not None
        detected = engine(narrow)
        boxes = getattr(detected, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return [], False
        scale = np.array([1 / settings.squeeze, 1.0], dtype=np.float32)
        quads = [np.asarray(box, dtype=np.float32) * scale for box in boxes]
        crops = [get_rotate_crop_image(full, quad.copy()) for quad in quads]
        if settings.use_cls:
            crops = list(engine.rapid._load_cls_model()(crops).img_list)
        results, cjk = self._read_lines(rec, crops)
        min_score = float(engine.rapid.text_score)
        segments = []
        for i, quad in enumerate(quads):
            text, score = results[i]
            if not text.strip() or score < min_score:
                continue
            xs, ys = quad[:, 0], quad[:, 1]
            segments.append(
                _Segment(
                    text, float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()), score
                )
            )
        return segments, cjk
