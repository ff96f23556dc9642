"""`label.engine=ray` and `predict.engine=ray`: the heavy stages as Ray Data pipelines.

How the work is split:

- **label**: the texts still to label are staged as parquet files, one per shard, in the labelling's
  folder (`ray-inputs/`). `ray.data.read_parquet` reads them and `map_batches` hands batches of
  `ray.batch_size` rows (default: one shard) to a pool of `ray.num_workers` actors. Each actor builds the
  teacher once and keeps it (one GPU per actor when the cluster has GPUs). This process takes the
  probabilities back in input order and writes the same shard files as the local engine, so a killed run
  resumes the same way and the finished labels file is the same.
- **predict**: Ray's CSV / JSON-lines / parquet reader reads the input file, blocks of rows go to an actor
  pool that loads the student (or teacher) once per actor, and the rows come back in input order into the
  output file. When `predict.output` is a folder, the workers write parquet shards there themselves.

What is shipped to the workers: the config and the code (the model is loaded by each actor from its path or
hub id, never pickled). On a multi-node cluster every node must see the same paths (outputs, models, input):
a shared file system or a mounted bucket, and distill installed (or `ray.runtime_env`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from .errors import DistillError, require

log = logging.getLogger(__name__)
Factory = Callable[[], Callable[[pd.DataFrame], pd.DataFrame]]


def _ray():
    return require("ray", "label.engine=ray / predict.engine=ray", "ray", "ray.data")[0]


@contextlib.contextmanager
def session(rcfg) -> Iterator[None]:
    """Connect to `ray.address` (or start a local instance); a local instance started here is stopped after."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        kwargs = dict(address=rcfg.address, include_dashboard=False, log_to_driver=False,
                      runtime_env=dict(rcfg.runtime_env) if rcfg.runtime_env else None)
        if rcfg.address is None:
            # one logical CPU beyond the pool's, for the reading and writing tasks (see worker_options)
            cpus = rcfg.num_cpus or max(os.cpu_count() or 1, int(np.ceil(rcfg.num_workers * rcfg.cpus_per_worker)) + 1)
            kwargs.update(num_cpus=cpus,
                          object_store_memory=rcfg.object_store_mb * 2**20 if rcfg.object_store_mb else None)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at ray.address={rcfg.address}" if rcfg.address else "a local Ray instance"
            raise DistillError(f"could not start or reach {where}: {str(e).strip().splitlines()[0]}") from e
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in input order
    context.enable_progress_bars = False  # distill's own bar counts rows; Ray's would print over it
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        with _user_errors():
            yield
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """A DistillError raised inside an actor comes out as itself (one line), not wrapped in Ray's errors."""
    try:
        yield
    except Exception as e:
        original = _original(e)
        if original is e or not isinstance(original, DistillError):
            raise
        raise DistillError(str(original)) from e


def _original(error: BaseException) -> BaseException:
    """The first DistillError in an exception's causes (Ray wraps what an actor raised), else the error."""
    seen, todo = set(), [error]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e) is DistillError:
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return error


def worker_options(rcfg) -> dict:
    """Actor pool size and per-actor resources for map_batches; checks the cluster can hold the pool.

    The pool must leave at least one CPU free: Ray Data's file listing, reading and writing run as tasks
    that need a CPU, and a pool holding every CPU would stall the pipeline for good."""
    ray = _ray()
    if rcfg.num_workers < 1 or rcfg.cpus_per_worker <= 0:
        raise DistillError("ray.num_workers must be >= 1 and ray.cpus_per_worker > 0")
    have = ray.cluster_resources()
    gpus = rcfg.gpus_per_worker
    if gpus is None:
        gpus = 1 if have.get("GPU", 0) >= 1 else 0
    need = {"CPU": rcfg.num_workers * rcfg.cpus_per_worker + 1, "GPU": rcfg.num_workers * gpus}
    short = [f"{need[k]:g} {k}s (it has {have.get(k, 0):g})" for k in need if need[k] > have.get(k, 0)]
    if short and rcfg.address is None:
        raise DistillError(f"ray.num_workers={rcfg.num_workers} actors need {' and '.join(short)} in the local "
                           f"Ray instance (one CPU more than the pool, for reading and writing); lower "
                           f"ray.num_workers or ray.cpus_per_worker / ray.gpus_per_worker, or raise ray.num_cpus")
    if short:
        log.warning("the Ray cluster has fewer resources than the pool needs (%s); actors wait for an "
                    "autoscaler", ", ".join(short))
    return dict(compute=ray.data.ActorPoolStrategy(size=rcfg.num_workers), num_cpus=rcfg.cpus_per_worker,
                num_gpus=gpus)


class FrameMapper:
    """A Ray actor: builds its function once (loading the model), then maps every batch of rows with it."""

    def __init__(self, factory: Factory):
        self.fn = factory()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self.fn(batch)


def map_frames(ds, factory: Factory, rcfg, batch_size: int):
    """`factory()` in each actor of the pool, then every batch of `batch_size` rows through what it built.
    The rows are first cut into blocks of `batch_size` (a streaming step), so every actor gets work."""
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    return ds.map_batches(FrameMapper, fn_constructor_args=(factory,), batch_size=batch_size,
                          batch_format="pandas", **worker_options(rcfg))


# --- label -----------------------------------------------------------------------------------------------

class TeacherProbabilities:
    """Built in each actor: the teacher, loaded once; batches of (shard, text) rows -> prob_<label> added.
    The first actor records the teacher's settings in `describe_path` (meta.json reads them)."""

    def __init__(self, teacher_cfg, labels: Sequence[str], describe_path: str):
        from .teachers import build_teacher

        self.teacher = build_teacher(teacher_cfg, list(labels))
        path = Path(describe_path)
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.teacher.describe(), default=str))
            os.replace(tmp, path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from .labelstore import prob_columns

        probs = self.teacher.predict_proba(batch["text"].tolist())
        out = batch.copy()
        for column, values in zip(prob_columns(self.teacher.labels), probs.T):
            out[column] = values.astype(np.float32)
        return out


class RayLabeller:
    """`labelstore.label_texts`'s labeller for `label.engine=ray` (see the module docstring)."""

    def __init__(self, teacher_cfg, labels: Sequence[str], folder: Path, rcfg, batch_size: Optional[int] = None):
        self.teacher_cfg, self.labels, self.folder, self.rcfg = teacher_cfg, list(labels), Path(folder), rcfg
        self.batch_size = rcfg.batch_size or batch_size or 512
        self.describe_path = self.folder / "teacher.json"

    def _stage(self, pending: Iterable[tuple[int, list[str]]]) -> dict[int, tuple[Path, int]]:
        """Write the texts still to label, a parquet file per shard (read back by Ray's reader):
        shard index -> (file, number of texts)."""
        staging = self.folder / "ray-inputs"
        shutil.rmtree(staging, ignore_errors=True)  # what a killed run left is staged again from the input
        staging.mkdir(parents=True)
        files = {}
        for index, chunk in pending:
            files[index] = (staging / f"part-{index:06d}.parquet", len(chunk))
            pd.DataFrame({"shard": np.full(len(chunk), index, dtype=np.int64), "text": chunk}).to_parquet(
                files[index][0], index=False)
        return files

    def run(self, pending: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str], np.ndarray]]:
        from functools import partial

        from .labelstore import prob_columns

        files = self._stage(pending)
        if not files:
            return
        columns = prob_columns(self.labels)
        with session(self.rcfg):
            ray = _ray()
            ds = ray.data.read_parquet([str(files[i][0]) for i in sorted(files)])
            factory = partial(TeacherProbabilities, self.teacher_cfg, self.labels, str(self.describe_path))
            out = map_frames(ds, factory, self.rcfg, self.batch_size)
            parts: dict[int, list[pd.DataFrame]] = {}
            for batch in out.iter_batches(batch_format="pandas", batch_size=None):
                for index, rows in batch.groupby("shard", sort=False):
                    parts.setdefault(int(index), []).append(rows)
                    if sum(map(len, parts[int(index)])) == files[int(index)][1]:
                        shard = pd.concat(parts.pop(int(index)))
                        yield int(index), shard["text"].tolist(), shard[columns].to_numpy(np.float32)
        if parts:
            raise DistillError(f"Ray returned incomplete shards {sorted(parts)} for {self.folder}; rerun to resume")
        shutil.rmtree(self.folder / "ray-inputs", ignore_errors=True)

    def describe(self) -> dict:
        if self.describe_path.exists():
            return json.loads(self.describe_path.read_text())
        from .teachers import build_teacher  # every shard was done before: describe the teacher here

        return build_teacher(self.teacher_cfg, self.labels).describe()


# --- predict ---------------------------------------------------------------------------------------------

def as_local(table) -> pd.DataFrame:
    """A block back from the actors as the local engine's frame: numpy-backed columns (NaN, None), and
    the predicted label as pandas' string type."""
    frame = table.to_pandas()
    frame["predicted_label"] = frame["predicted_label"].astype("string")
    return frame


def read_input(path: Path, fmt: str, columns: Sequence[str]):
    """The input file as a Ray dataset, read as `data.read_frames` reads it (CSV cells as strings, "" = missing,
    TSV never unquoted)."""
    ray = _ray()
    if fmt in ("csv", "tsv"):
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return ray.data.read_csv(
            str(path), parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",",
                                                        quote_char=False if fmt == "tsv" else '"'),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=True, null_values=[""]))
    if fmt == "jsonl":
        return ray.data.read_json(str(path), lines=True, file_extensions=None)
    return ray.data.read_parquet(str(path))


def predict_file(input_path: Path, output: Path, frame_fn: Factory, labels: Sequence[str],
                 text_columns: Sequence[str], rcfg, chunk_rows: int, threshold: Optional[float] = None,
                 desc: str = "predict") -> dict:
    """predict.engine=ray: `frame_fn()` (built once per actor) maps blocks of `chunk_rows` rows of the input.

    `output` with a known extension is written here, rows in input order; a folder gets parquet shards
    written by the workers. Returns what `distill.predictions.predict_file` returns."""
    from tqdm.auto import tqdm

    from .data import FORMATS, count_rows, file_format
    from .predictions import Tally, check_paths, first_chunk, write_frames

    to_folder = output.suffix.lower() not in FORMATS
    fmt_in, fmt_out = (file_format(input_path), None) if to_folder else check_paths(input_path, output)
    if to_folder and output.exists() and any(output.iterdir()):
        raise DistillError(f"predict.output={output} is a folder that is not empty; choose a new folder or "
                           f"delete it (nothing in it is overwritten)")
    first = first_chunk(input_path, fmt_in, text_columns)  # a corrupt file, no rows, a missing column: here
    with session(rcfg):
        ds = read_input(input_path, fmt_in, list(first.columns))
        out = map_frames(ds, frame_fn, rcfg, chunk_rows)
        if to_folder:  # written beside it, then renamed: a failed run leaves no half-written folder
            staging = output.with_name(output.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            out.write_parquet(str(staging))
            os.replace(staging, output)
            tally = Tally(labels)
            for batch in _ray().data.read_parquet(str(output)).select_columns(
                    ["predicted_label", "text_missing"]).iter_batches(batch_format="pandas", batch_size=None):
                tally.add(batch)
        else:
            with tqdm(total=count_rows(input_path, fmt_in), desc=desc, unit="row") as bar:
                frames = (as_local(table) for table in out.iter_batches(batch_format="pyarrow", batch_size=None))
                tally = write_frames(frames, output, fmt_out, labels, bar)
    return tally.result(input_path, output, threshold)
