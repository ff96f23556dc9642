"""stage=train under torchrun / accelerate launch: the Trainer's DDP on two CPU processes (gloo), rank 0 writes.

On a machine with two GPUs the same commands (without train.device=cpu) put one process on each GPU; the
tests pin two CPU processes, which checks the distributed path on any machine (the batches are split: half
the optimizer steps of one process), a one-GPU machine included."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import tiny_args  # noqa: F401  (fixture)

BIN = Path(sys.executable).parent
LAUNCHERS = {
    "torchrun": [str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", "distill"],
    "accelerate": [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "-m", "distill"],
}
TRAIN = ("data.pool_size=32", "train.epochs=2", "train.batch_size=4", "student=minilm", "train.device=cpu")


def run(command: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=600)


def student_meta(tmp_path: Path) -> dict:
    (meta,) = (tmp_path / "out" / "students" / "sst2").glob("*/distill_train.json")
    return json.loads(meta.read_text())


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_train_runs_data_parallel_on_two_processes(launcher, tiny_args, tmp_path):  # noqa: F811
    if not Path(LAUNCHERS[launcher][0]).exists():
        pytest.skip(f"{launcher} is not installed in this environment")
    plain = [sys.executable, "-m", "distill"]
    assert run(plain, "stage=label", *tiny_args, *TRAIN).returncode == 0
    single = run(plain, "stage=train", *tiny_args, *TRAIN)
    assert single.returncode == 0, single.stderr[-3000:]
    one_process_steps = student_meta(tmp_path)["steps"]

    proc = run(LAUNCHERS[launcher], "stage=train", "train.overwrite=true", *tiny_args, *TRAIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = student_meta(tmp_path)
    assert meta["steps"] * 2 == one_process_steps  # each process took half of every epoch's batches
    folder = Path(meta["out_dir"])
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert not (folder / "checkpoints").exists()
    assert (proc.stdout + proc.stderr).count("train: minilm student on") == 1  # rank 0 alone reports and writes


def test_other_stages_refuse_to_run_under_torchrun(tiny_args):  # noqa: F811
    proc = run(LAUNCHERS["torchrun"], "stage=label", *tiny_args)
    assert proc.returncode != 0
    assert "only stage=train runs in several processes" in proc.stderr


def test_more_processes_than_gpus_is_one_clear_error(monkeypatch, tmp_path):
    """Two ranks on one GPU: NCCL's 'Duplicate GPU detected' deep in the first collective, unless we say so first."""
    import torch

    from distill.config import TrainConfig
    from distill.errors import DistillError
    from distill.students.finetune import training_kwargs

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DistillError, match=r"2 training processes .* 1 CUDA GPU\(s\) visible.*train.device=cpu"):
        training_kwargs(TrainConfig(device="cuda"), tmp_path, n_texts=10)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert training_kwargs(TrainConfig(device="cuda"), tmp_path, n_texts=10)["bf16"]  # one GPU each: fine
