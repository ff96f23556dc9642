"""The stages. Each is `run(cfg) -> dict`, callable without Hydra (tests compose the real config)."""
from __future__ import annotations

from omegaconf import DictConfig

from . import evaluate, label, train


def run_all(cfg: DictConfig) -> dict:
    """label -> train -> eval in a row; each step reuses what an earlier run already computed."""
    return {"label": label.run(cfg), "train": train.run(cfg), "eval": evaluate.run(cfg)}


STAGES = {"label": label.run, "train": train.run, "eval": evaluate.run, "all": run_all}


def run_stage(cfg: DictConfig) -> dict:
    name = cfg.stage.value if hasattr(cfg.stage, "value") else str(cfg.stage)
    return STAGES[name](cfg)
