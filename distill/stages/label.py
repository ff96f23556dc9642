"""Stage `label`: the teacher labels the unlabelled pool (never its gold labels), shard by shard."""
from __future__ import annotations

import logging

from omegaconf import DictConfig

from ..labelling import label_split

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    result = label_split(cfg, "pool")
    meta = result.meta
    known = meta.get("n_from_cache") or 0
    speed = "cached, nothing relabelled" if result.cached else ", ".join(
        ([f"{meta['texts_per_s']:.1f} texts/s"] if meta.get("texts_per_s") else []) +
        ([f"{known} from the label cache"] if known else []))
    log.info("label: %d texts labelled by %s (%s) -> %s", meta["n_texts"], cfg.teacher.name, speed, result.path)
    return {"labels_path": str(result.path), "n_texts": meta["n_texts"], "cached": result.cached,
            "texts_per_s": meta.get("texts_per_s"), "label_counts": meta.get("label_counts"),
            "separation": meta.get("separation"), "n_from_cache": meta.get("n_from_cache")}
