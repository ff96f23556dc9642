"""Label one split of the configured data with the configured teacher, locally or on Ray.

Used by the label, eval and weak stages (and the benchmarks): the labels land at their content-keyed
path (distill/artifacts.py), shard by shard, resumable and cached (distill/labelstore.py); multi-label
files also keep each text's label set at teacher.label_sets (column `labels`).
"""
from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

from . import artifacts
from .config import Engine, multi_label, none_index
from .data import load_heldout, stream_pool
from .errors import DistillError
from .labelstore import Labelled, TextCache, keep_sets, label_texts, separation_line
from .runtime.device import resolve_device
from .teachers import build_teacher
from .teachers.nli import decide_compile
from .teachers.processes import ProcessPoolTeacher

log = logging.getLogger(__name__)


def label_split(cfg: DictConfig, split: str, teacher=None) -> Labelled:
    """Label one split ("pool" or "heldout") of the configured data with the configured teacher."""
    data_dir = os.path.expanduser(cfg.paths.data)
    # The pool is streamed (never all in memory); the held-out gold labels are loaded with the texts but
    # never handed to the teacher.
    if split == "pool":
        texts = stream_pool(cfg.data, data_dir)
        rows, notes = texts.rows, texts.notes
    else:
        held = load_heldout(cfg.data, data_dir)
        texts, rows, notes = held.texts, held.rows, {}
    make = (lambda: teacher) if teacher is not None else (lambda: local_teacher(cfg, len(texts)))
    folder = artifacts.labels_dir(cfg, split)
    labeller = None
    if cfg.label.engine == Engine.ray and teacher is None:
        from .ray_engine import RayLabeller  # imports Ray only when asked for

        labeller = RayLabeller(cfg.teacher, list(cfg.data.labels), folder, cfg.ray, cfg.label.shard_size)
    cache = TextCache(artifacts.label_cache(cfg), len(cfg.data.labels)) if cfg.label.cache else None
    result = label_texts(texts, make, folder, artifacts.label_identity(cfg, split), cfg.label.shard_size,
                         labeller=labeller, rows=rows, notes=notes, cache=cache)
    if warning := separation_line(result.meta, cfg.teacher.name):
        log.warning("%s", warning)
    if multi_label(cfg):
        keep_sets(result, list(cfg.data.labels), str(cfg.teacher.label_sets), none_index(cfg), cfg.data.label_separator)
    return result


def local_teacher(cfg: DictConfig, n_texts: int | None = None):
    """The teacher for the local engine: in this process, or in `label.workers` processes on a CPU.
    `n_texts`, the size of the labelling, decides teacher.compile=auto (unknown: not compiled)."""
    labels, workers = list(cfg.data.labels), cfg.label.workers
    if workers < 1:
        raise DistillError(f"label.workers must be at least 1, got {workers}")
    teacher_cfg = decide_compile(cfg.teacher, labels, n_texts)
    if workers > 1 and resolve_device(cfg.teacher.device).type == "cpu":
        return ProcessPoolTeacher(teacher_cfg, labels, workers)
    if workers > 1:
        log.info("label.workers=%d applies to CPU teachers; labelling on %s in this process", workers,
                 cfg.teacher.device)
    return build_teacher(teacher_cfg, labels)
