"""A teacher spread over several local processes (`label.workers`): CPU cores used in parallel.

On a CPU, one process running a small model with N threads leaves cores idle: the short texts zero-shot
labelling sees make matrices too small to split well, and Python runs between the kernels. N processes
with one thread each, every one holding its own copy of the teacher, keep the cores busy instead.
`predict_proba` deals the texts out by length (so each worker gets as many tokens) and puts the rows
back in input order; the probabilities are those of the teacher in one process.

The workers are started (with `spawn`, safe after torch has started threads) on the first call and
build the teacher there; they stop with `close()`, or when the process exits.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

import numpy as np
import torch

from ..errors import DistillError
from .base import Teacher

log = logging.getLogger(__name__)

_TEACHER: Teacher | None = None  # the teacher of this worker process


def _teacher(cfg, labels: list[str]) -> Teacher:
    """This worker's teacher, built on its first task."""
    global _TEACHER
    if _TEACHER is None:
        from . import build_teacher

        _TEACHER = build_teacher(cfg, labels)
    return _TEACHER


def _predict(cfg, labels: list[str], texts: list[str], batch_size: int | None) -> tuple[np.ndarray, int, int]:
    """(probabilities, how many of the texts the worker's teacher scored again in float32, how many it cut)."""
    teacher = _teacher(cfg, labels)
    before, cut = getattr(teacher, "rechecked", 0), truncated(teacher)
    probs = teacher.predict_proba(texts, batch_size)
    return probs, getattr(teacher, "rechecked", 0) - before, truncated(teacher) - cut


def truncated(teacher) -> int:
    """Texts a teacher has cut to the length its model reads (0 where it does not count them)."""
    encoder = getattr(teacher, "encoder", None)
    return int(getattr(teacher, "truncated", None) or getattr(encoder, "truncated", 0) or 0)


def _describe(cfg, labels: list[str]) -> dict:
    return _teacher(cfg, labels).describe()


def deal(texts: Sequence[str], workers: int) -> list[np.ndarray]:
    """Row indices for each worker: the texts sorted by length and dealt round-robin, so every worker
    gets texts of every length and about the same number of characters."""
    order = np.argsort([-len(t) if isinstance(t, str) else 0 for t in texts], kind="stable")
    return [order[w::workers] for w in range(workers)]


class ProcessPoolTeacher(Teacher):
    """`cfg`'s teacher in `workers` processes of `threads` torch threads each (default: this process's
    threads split among them, at least one)."""

    def __init__(self, cfg, labels: Sequence[str], workers: int, threads: int | None = None):
        self.cfg, self.labels, self.name, self.workers = cfg, list(labels), cfg.name, workers
        self.threads = threads or max(1, torch.get_num_threads() // workers)
        self._pool: ProcessPoolExecutor | None = None
        self._description: dict | None = None
        self.rechecked = 0  # texts the workers' teachers scored again in float32 (NLITeacher.recheck_margin)
        self.truncated = 0  # texts the workers' teachers cut to the length their model reads

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            log.info("teacher %s: starting %d worker processes of %d thread(s) each", self.name, self.workers,
                     self.threads)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=torch.set_num_threads, initargs=(self.threads,))
            atexit.register(self.close)
        return self._pool

    def _gather(self, futures: list) -> list:
        try:
            return [f.result() for f in futures]
        except BrokenProcessPool as e:
            self.close()
            raise DistillError(f"a label worker process of teacher {self.name} died (out of memory or killed?); "
                               f"rerun to resume from the shards already written, or lower label.workers") from e

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        parts = [rows for rows in deal(texts, min(self.workers, len(texts))) if len(rows)]
        pool = self._executor()
        results = self._gather([pool.submit(_predict, self.cfg, self.labels, [texts[i] for i in rows], batch_size)
                                for rows in parts])
        for rows, (probs, rechecked, cut) in zip(parts, results):
            out[rows] = probs
            self.rechecked += rechecked
            self.truncated += cut
        return out

    def describe(self) -> dict:
        if self._description is None:
            self._description = self._gather([self._executor().submit(_describe, self.cfg, self.labels)])[0]
        return self._description

    def peak_rss_mb(self) -> list[float]:
        """Each running worker's RSS high-water mark in MiB (Linux; empty elsewhere or before the first call)."""
        peaks = []
        for pid in list(getattr(self._pool, "_processes", None) or {}):
            try:
                with open(f"/proc/{pid}/status") as f:
                    peaks += [int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")]
            except OSError:
                pass
        return peaks

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
