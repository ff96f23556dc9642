"""Teacher labels on disk: written shard by shard as they are produced, resumable, cached.

Layout of one labelling (one split of one data set by one teacher):

    <dir>/shards/part-000000.parquet ...   one file per `shard_size` texts, each written atomically
    <dir>/manifest.json                    the identity of the labelling and the shard size
    <dir>/labels.parquet                   all shards in input order, written when the last one is done
    <dir>/meta.json                        what produced it: teacher, template, labels, counts, time, texts/s

A killed run loses at most the shard in flight; rerunning the same command resumes after the last
finished shard. A finished labelling with the same identity is a cache hit. A different identity never
lands in the same folder (the folder name is a hash of it), and a stale manifest is refused.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .artifacts import write_json
from .errors import DistillError
from .teachers.base import Teacher

log = logging.getLogger(__name__)
PROB_PREFIX = "prob_"


@dataclass
class Labelled:
    path: Path
    meta: dict
    cached: bool


def prob_columns(labels: Sequence[str]) -> list[str]:
    return [f"{PROB_PREFIX}{name}" for name in labels]


def to_frame(texts: Sequence[str], probs: np.ndarray, labels: Sequence[str], start: int) -> pd.DataFrame:
    """One row per text: its id, the text, every label's probability, the argmax label and its probability."""
    frame = pd.DataFrame({"id": np.arange(start, start + len(texts)), "text": list(texts)})
    for col, column in zip(prob_columns(labels), probs.T):
        frame[col] = column.astype(np.float32)
    best = probs.argmax(axis=1)
    frame["label"] = [labels[i] for i in best]
    frame["confidence"] = probs[np.arange(len(best)), best].astype(np.float32)
    return frame


def read_labels(path: Path, labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Texts and the [N, K] probability matrix of a label file, checked against the expected labels."""
    if not path.exists():
        raise DistillError(f"no teacher labels at {path}")
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DistillError(f"{path} is not a readable parquet file ({e}); delete it and run stage=label again") from e
    missing = [c for c in ["text", *prob_columns(labels)] if c not in frame.columns]
    if missing:
        have = [c[len(PROB_PREFIX):] for c in frame.columns if c.startswith(PROB_PREFIX)]
        raise DistillError(f"{path} has no column(s) {', '.join(missing)}: it was labelled with labels {have}, "
                           f"the config asks for {list(labels)}")
    return frame["text"].tolist(), frame[prob_columns(labels)].to_numpy(np.float32)


def _shard_path(folder: Path, index: int) -> Path:
    return folder / "shards" / f"part-{index:06d}.parquet"


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _check_manifest(folder: Path, identity: dict, n_texts: int, shard_size: int) -> None:
    manifest = folder / "manifest.json"
    want = {"identity": identity, "n_texts": n_texts, "shard_size": shard_size}
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if have != json.loads(json.dumps(want, default=str)):
            raise DistillError(f"{folder} holds a partial labelling made with other settings "
                               f"(n_texts/shard_size/identity differ); delete the folder to start over")
        return
    write_json(manifest, want)


def label_texts(
    texts: Sequence[str],
    make_teacher: Callable[[], Teacher],
    folder: Path,
    identity: dict,
    shard_size: int = 512,
) -> Labelled:
    """Label `texts` into `folder`, resuming finished shards and reusing a finished labelling."""
    out, meta_path = folder / "labels.parquet", folder / "meta.json"
    if out.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("n_texts") == len(texts):
            log.info("labels already computed for these settings (cache hit): %s", out)
            return Labelled(out, meta, cached=True)
    _check_manifest(folder, identity, len(texts), shard_size)
    n_shards = max(1, -(-len(texts) // shard_size))
    todo = [i for i in range(n_shards) if not _shard_path(folder, i).exists()]
    if len(todo) < n_shards:
        log.info("resuming: %d of %d shards already labelled in %s", n_shards - len(todo), n_shards, folder)
    teacher, seconds, labelled = None, 0.0, 0
    with tqdm(total=len(texts), initial=len(texts) - sum(_shard_len(i, shard_size, len(texts)) for i in todo),
              desc="label", unit="text") as bar:
        for i in todo:
            teacher = teacher or make_teacher()
            chunk = texts[i * shard_size:(i + 1) * shard_size]
            start = time.perf_counter()
            probs = teacher.predict_proba(chunk)
            seconds += time.perf_counter() - start
            labelled += len(chunk)
            _write_parquet(to_frame(chunk, probs, teacher.labels, i * shard_size), _shard_path(folder, i))
            bar.update(len(chunk))
    teacher = teacher or make_teacher()
    return _finish(folder, n_shards, teacher, identity, len(texts), labelled, seconds)


def _shard_len(index: int, shard_size: int, n: int) -> int:
    return max(0, min(shard_size, n - index * shard_size))


def _finish(folder: Path, n_shards: int, teacher: Teacher, identity: dict, n_texts: int,
            labelled: int, seconds: float) -> Labelled:
    """Concatenate the shards into labels.parquet and write meta.json."""
    frame = pd.concat([pd.read_parquet(_shard_path(folder, i)) for i in range(n_shards)], ignore_index=True)
    if len(frame) != n_texts or not (frame["id"].to_numpy() == np.arange(n_texts)).all():
        raise DistillError(f"{folder}/shards do not cover rows 0..{n_texts - 1} exactly once; delete the folder")
    out = folder / "labels.parquet"
    _write_parquet(frame, out)
    meta = {
        "teacher": teacher.describe(),
        "labels": list(teacher.labels),
        "identity": identity,
        "n_texts": n_texts,
        "n_labelled_this_run": labelled,
        "seconds": round(seconds, 3),
        "texts_per_s": round(labelled / seconds, 3) if seconds else None,
        "label_counts": frame["label"].value_counts().to_dict(),
        "mean_confidence": float(frame["confidence"].mean()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(folder / "meta.json", meta)
    return Labelled(out, meta, cached=False)
