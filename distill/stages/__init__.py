"""The stages. Each is `run(cfg) -> dict`, callable without Hydra (tests compose the real config).

A stage module is imported only when its stage runs, so `python -m distill stage=label` never loads the
training or publishing code (nor their libraries)."""
from __future__ import annotations

import importlib
import logging
import os

from omegaconf import DictConfig, OmegaConf

from .. import tracking
from ..errors import DistillError
from ..runtime.device import world_size

log = logging.getLogger(__name__)
# stage name -> the module under distill/stages/ whose run(cfg) it is
MODULES = {"label": "label", "train": "train", "eval": "evaluate", "publish": "publish", "predict": "predict",
           "prune": "prune", "weak": "weak", "review": "review"}


def stage_run(name: str):
    """The `run(cfg)` of stage `name` (importing its module now)."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}").run


def run_all(cfg: DictConfig) -> dict:
    """label -> train (or the recipe's steps) -> eval in a row; each step reuses what an earlier run
    already computed."""
    check_gold(cfg)
    first = "weak" if cfg.get("weak") is not None else "label"  # weak: several sources and a label model
    result = {first: _step(first, cfg)}
    if cfg.get("recipe") is not None:
        result["recipe"] = run_recipe(cfg)
    else:
        result["train"] = _step("train", cfg)
    return {**result, "eval": _step("eval", cfg)}


def check_gold(cfg: DictConfig) -> None:
    """eval scores against the gold labels when the data has them: their values are checked (data.label_map
    applied) before the labelling and training, so one that is not a label stops the run at once, not after
    them."""
    from ..data import has_gold, load_heldout

    if has_gold(cfg.data):
        load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))


def run_recipe(cfg: DictConfig) -> dict:
    """The steps of cfg.recipe in order (artifacts.recipe_steps), each a stage run, cached like one: a rerun
    redoes only the steps that had not finished."""
    from .. import artifacts

    results = {}
    for step, step_cfg, _ in artifacts.recipe_steps(cfg):
        log.info("recipe %s: step %s (stage=%s)", cfg.recipe.name, step.name, step.stage)
        results[step.name] = _step(str(step.stage), step_cfg)
    return results


def _step(name: str, cfg: DictConfig) -> dict:
    """One stage, its result recorded in the open experiment tracker (nothing with logger=none)."""
    return tracking.log_stage(name, cfg, stage_run(name)(cfg))


def stage_name(cfg: DictConfig) -> str:
    return cfg.stage.value if hasattr(cfg.stage, "value") else str(cfg.stage)


def resolve_teacher(cfg: DictConfig) -> DictConfig:
    """teacher=auto (or a teacher over teacher.auto_from labels or more) becomes the teacher chosen without gold
    (distill/weak/choice.py; cached), before any stage reads it."""
    teacher, data = cfg.get("teacher"), cfg.get("data")
    if teacher is None or data is None or OmegaConf.is_missing(data, "labels"):
        return cfg
    many = teacher.get("auto_from") is not None and len(data.labels) >= int(teacher.auto_from)
    if str(getattr(teacher.kind, "value", teacher.kind)) != "auto" and not many:
        return cfg  # (without importing the comparison's libraries)
    from ..weak.choice import resolve

    return resolve(cfg)


def run_stage(cfg: DictConfig) -> dict:
    name = stage_name(cfg)
    if world_size() > 1 and name != "train":
        raise DistillError(f"stage={name} under torchrun / accelerate launch: only stage=train runs in several "
                           f"processes (the Trainer's DDP); run stage={name} as a plain command")
    resolve_teacher(cfg)
    with tracking.tracked(cfg, name):  # one W&B run per command with logger=wandb
        if name == "recipe":
            return run_recipe(cfg)
        return run_all(cfg) if name == "all" else _step(name, cfg)
