"""`distill [stage=label|train|eval|all|...] [overrides...]`, `distill init FILE`, `--help`, `--version`.

Only glue: the stages live in distill/stages, the help and `init` in distill/cli.py. A problem the user can
fix is reported as one line (`distill: error: ...`) with exit code 2; `debug=true` or HYDRA_FULL_ERROR=1
shows the traceback.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, register_configs, settle
from .errors import DistillError, no_room
from .overrides import check_overrides
from .sweep import finish_job, missing_plugin

log = logging.getLogger("distill")
# the user's own HYDRA_FULL_ERROR=1 (a traceback wanted); main() sets it for Hydra to hand exceptions back
USER_FULL_ERROR = os.environ.get("HYDRA_FULL_ERROR") == "1"
INTERRUPTED = ("distill: interrupted: what was finished is kept (labels shard by shard, training at its last "
               "checkpoint); run the same command again to go on")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> object:
    from .stages import run_stage, stage_name

    try:
        from hydra.core.hydra_config import HydraConfig

        settle(cfg, list(HydraConfig.get().overrides.task))
        # result.json in the job folder (a sweep's summary reads it); the objective's value when one is set
        return finish_job(cfg, stage_name(cfg), run_stage(cfg))
    except Exception as e:
        line = user_error(e, cfg.paths.outputs)
        if line is None or cfg.debug or USER_FULL_ERROR:
            raise
        log.error("%s", line)
        print(f"distill: error: {line}", file=sys.stderr)
        sys.exit(2)


def user_error(e: BaseException, outputs: str | None = None) -> str | None:
    """The one line a user gets for a problem they can fix (None: a bug, whose traceback is shown); `outputs`
    is where the run writes, for errors that do not name their file."""
    from hydra.errors import HydraException

    if isinstance(e, DistillError):
        return str(e)
    if isinstance(e, HydraException):
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        hint = [x for x in lines[1:] if x.startswith("To append to your config use")]  # the fix, when Hydra has one
        return " ".join(lines[:1] + hint) or type(e).__name__
    for cause in chain(e):
        if no_room(cause):
            where = getattr(cause, "filename2", None) or getattr(cause, "filename", None)  # a copy's target
            where = where or (f"a file under {outputs}" if outputs else "a file")
            return (f"no room to write {where} ({getattr(cause, 'strerror', None) or cause}): free some "
                    f"space or set paths.outputs to a disk with room, then run the same command again (what was "
                    f"finished is kept)")
        if isinstance(cause, OSError) and cause.filename and cause.errno in (
                errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR):
            if outputs and related(str(cause.filename), outputs):
                return (f"cannot write {cause.filename} ({cause.strerror}): set paths.outputs to a folder you can "
                        f"write to")
            return f"cannot use {cause.filename} ({cause.strerror}) (debug=true shows where this came from)"
    return None


def related(path: str, folder: str) -> bool:
    """`path` lies in `folder` or is one of the folders above it (creating it failed there)."""
    path, folder = os.path.abspath(os.path.expanduser(path)), os.path.abspath(os.path.expanduser(folder))
    return os.path.commonpath([path, folder]) in (path, folder)


def outputs_in(argv: list[str]) -> str:
    """paths.outputs as the command line sets it (the default otherwise), before Hydra has read it."""
    given = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("paths.outputs=")]
    return given[-1] if given else os.environ.get("DISTILL_OUTPUTS", "outputs")


def chain(e: BaseException) -> list[BaseException]:
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def interrupted(e: BaseException) -> bool:
    """A Ctrl-C, or an error it caused: one that lands while a compiled module initialises (scipy's, imported
    lazily by transformers) comes back as ImportError("initialization failed") with the KeyboardInterrupt as
    its cause."""
    return any(isinstance(c, KeyboardInterrupt) for c in chain(e))


def redeliver_interrupts() -> None:
    """A Ctrl-C that lands while Python runs a finalizer (a __del__ such as tqdm's, a weakref callback) is
    printed as "Exception ignored in ..." with a traceback and dropped, and the work goes on. This hook delivers
    it again from a timer thread once the finalizer has returned, so it stops the stage like any other Ctrl-C."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            import _thread

            threading.Timer(0.01, _thread.interrupt_main).start()
            return
        previous(unraisable)

    sys.unraisablehook = hook


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
    debug = USER_FULL_ERROR or any(a.replace(" ", "").lower().lstrip("+") == "debug=true" for a in argv)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra hands its exceptions (a full disk, a bad override) back here
    redeliver_interrupts()
    try:
        _main()
        # the work is done and saved: a Ctrl-C from here on would only interrupt the interpreter's shutdown
        # (joining threads), which prints a traceback and still exits 0 (tests/test_fault_matrix.py, "SIGINT")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (KeyboardInterrupt, Exception) as e:  # a Ctrl-C, or an error one caused: the same one line
        if debug:
            raise
        if interrupted(e):
            print(INTERRUPTED, file=sys.stderr)
            sys.exit(130)
        line = user_error(e, outputs_in(argv))
        if line is None:
            raise
        print(f"distill: error: {line}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
