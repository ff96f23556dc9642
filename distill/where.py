"""`python -m distill.where labels|student|eval [overrides...]`: print where a config's artifact lives.

Artifact paths are keyed by content (distill/artifacts.py), so a script that chains stages, such as the
teacher-assistant step of scripts/run_comparison.sh (a trained student labels a larger pool), asks here for the
folder a stage wrote instead of guessing its key. Nothing is run or created; the path may not exist yet.
"""
from __future__ import annotations

import sys

from . import artifacts
from .config import load_config, register_configs
from .errors import DistillError
from .overrides import check_overrides

PLACES = {"labels": lambda cfg: artifacts.labels_file(cfg, "pool"),
          "heldout-labels": lambda cfg: artifacts.labels_file(cfg, "heldout"),
          "student": artifacts.student_dir, "eval": artifacts.eval_dir,
          "report": lambda cfg: artifacts.report_dir(cfg) / "report.md"}
USAGE = f"usage: python -m distill.where {{{'|'.join(PLACES)}}} [hydra overrides...]"


def where(place: str, overrides: list[str]) -> str:
    if place not in PLACES:
        raise DistillError(f"unknown artifact '{place}'; {USAGE}")
    problem = check_overrides(overrides)
    if problem:
        raise DistillError(problem)
    register_configs()  # ./distill.yaml, as the command line composes it
    from .stages import resolve_teacher

    return str(PLACES[place](resolve_teacher(load_config(overrides))))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else 2
    try:
        print(where(argv[0], argv[1:]))
    except DistillError as e:
        print(f"distill.where: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
