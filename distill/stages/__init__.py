"""The stages. Each is `run(cfg) -> dict`, callable without Hydra (tests compose the real config).

A stage module is imported only when its stage runs, so `python -m distill stage=label` never loads the
training or publishing code (nor their libraries)."""
from __future__ import annotations

import importlib

from omegaconf import DictConfig

from .. import tracking
from ..errors import DistillError
from ..runtime.device import world_size

# stage name -> the module under distill/stages/ whose run(cfg) it is
MODULES = {"label": "label", "train": "train", "eval": "evaluate", "publish": "publish", "predict": "predict",
           "prune": "prune", "weak": "weak"}


def stage_run(name: str):
    """The `run(cfg)` of stage `name` (importing its module now)."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}").run


def run_all(cfg: DictConfig) -> dict:
    """label -> train -> eval in a row; each step reuses what an earlier run already computed."""
    if cfg.get("weak") is not None:  # several sources and a label model instead of one teacher
        return {"weak": _step("weak", cfg), "train": _step("train", cfg), "eval": _step("eval", cfg)}
    return {"label": _step("label", cfg), "train": _step("train", cfg), "eval": _step("eval", cfg)}


def _step(name: str, cfg: DictConfig) -> dict:
    """One stage, its result recorded in the open experiment tracker (nothing with logger=none)."""
    return tracking.log_stage(name, cfg, stage_run(name)(cfg))


def stage_name(cfg: DictConfig) -> str:
    return cfg.stage.value if hasattr(cfg.stage, "value") else str(cfg.stage)


def run_stage(cfg: DictConfig) -> dict:
    name = stage_name(cfg)
    if world_size() > 1 and name != "train":
        raise DistillError(f"stage={name} under torchrun / accelerate launch: only stage=train runs in several "
                           f"processes (the Trainer's DDP); run stage={name} as a plain command")
    with tracking.tracked(cfg, name):  # one W&B run per command with logger=wandb
        return run_all(cfg) if name == "all" else _step(name, cfg)
