"""`distill [stage=label|train|eval|all|...] [overrides...]`, `distill init FILE`, `--help`, `--version`.

Only glue: the stages live in distill/stages, the help and `init` in distill/cli.py. A problem the user can
fix is reported as one line (`distill: error: ...`) with exit code 2; `debug=true` or HYDRA_FULL_ERROR=1
shows the traceback.
"""
from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, register_configs, settle
from .errors import DistillError
from .overrides import check_overrides
from .sweep import finish_job, missing_plugin

log = logging.getLogger("distill")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> object:
    from .stages import run_stage, stage_name

    try:
        from hydra.core.hydra_config import HydraConfig

        settle(cfg, list(HydraConfig.get().overrides.task))
        # result.json in the job folder (a sweep's summary reads it); the objective's value when one is set
        return finish_job(cfg, stage_name(cfg), run_stage(cfg))
    except DistillError as e:
        if cfg.debug or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", e)
        print(f"distill: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    from . import cli

    argv = sys.argv[1:]
    if argv[:1] == ["init"]:
        sys.exit(cli.main_init(argv[1:]))
    if "--help" in argv or "-h" in argv:
        print(cli.help_text())
        sys.exit(0)
    if "--version" in argv:
        print(cli.version_text())
        sys.exit(0)
    try:
        register_configs()  # reads ./distill.yaml: a broken one is the user's to fix
    except DistillError as e:
        print(f"distill: error: {e}", file=sys.stderr)
        sys.exit(2)
    problem = check_overrides(argv) or missing_plugin(argv)
    if problem:
        print(f"distill: error: {problem}", file=sys.stderr)
        sys.exit(2)
    _main()


if __name__ == "__main__":
    main()
