"""`python -m distill [stage=label|train|eval|all] [overrides...]`: compose the config, run the stage.

Only glue: the stages live in distill/stages. A problem the user can fix is reported as one line
(`distill: error: ...`) with exit code 2; `debug=true` or HYDRA_FULL_ERROR=1 shows the traceback.
"""
from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, register_configs
from .errors import DistillError
from .overrides import check_overrides
from .sweep import finish_job, missing_plugin

log = logging.getLogger("distill")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> object:
    from .stages import run_stage, stage_name

    try:
        # result.json in the job folder (a sweep's summary reads it); the objective's value when one is set
        return finish_job(cfg, stage_name(cfg), run_stage(cfg))
    except DistillError as e:
        if cfg.debug or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", e)
        print(f"distill: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    register_configs()
    problem = check_overrides(sys.argv[1:]) or missing_plugin(sys.argv[1:])
    if problem:
        print(f"distill: error: {problem}", file=sys.stderr)
        sys.exit(2)
    _main()


if __name__ == "__main__":
    main()
