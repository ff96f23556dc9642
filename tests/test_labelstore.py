"""Never lose work: SIGKILL the label stage for real, rerun the same command, get the same labels."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

POS = ["a great movie", "good fun", "i love this film", "really good story", "fine and fun and great actors"]
NEG = ["an awful movie", "terrible plot", "i hate this film", "really bad story", "so boring and the actors were bad"]


def write_pool(root, n):
    (root / "sst2").mkdir(parents=True)
    texts = [f"{(POS + NEG)[i % 10]} {'very ' * (i % 7)}{i}" for i in range(n)]
    pd.DataFrame({"sentence": texts}).to_csv(root / "sst2" / "train.tsv", sep="\t", index=False)


def label_cmd(data, out, model, workers=1):
    return [sys.executable, "-m", "distill", "stage=label", f"paths.data={data}", f"paths.outputs={out}",
            f"teacher.model={model}", "data.pool_size=null", "label.shard_size=4", "teacher.batch_size=8",
            f"label.workers={workers}"]


def kill_after_shards(cmd, out, min_shards):
    """Start the command, SIGKILL it once `min_shards` shards are on disk; True if it died unfinished."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        shards = list(out.glob("labels/sst2/*/shards/part-*.parquet"))
        if len(shards) >= min_shards:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return not list(out.glob("labels/sst2/*/labels.parquet"))
        time.sleep(0.002)
    proc.wait()
    return False


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-worker-processes"])
def test_sigkill_then_rerun_resumes_and_matches(tmp_path, tiny_nli_2way, workers):
    data = tmp_path / "data"
    write_pool(data, 1600)
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    # The killed runs use `workers` label processes (killed with their parent's group); so does the clean one,
    # the same command: the promise is the labels of an uninterrupted run, in whatever precision `auto` picks on
    # this CPU (in bf16 a text's probabilities move with its batch's shape, so the batches must be the same ones;
    # that 2 workers give one process's labels is a float32 property, tested in test_stages).
    cmd = label_cmd(data, killed_out, tiny_nli_2way, workers)
    # Kill twice at different points, then let it finish.
    assert kill_after_shards(cmd, killed_out, 3), "the run finished before it could be killed"
    first_kill = len(list(killed_out.glob("labels/sst2/*/shards/part-*.parquet")))
    assert kill_after_shards(cmd, killed_out, first_kill + 20), "the resumed run finished before the kill"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming" in done.stdout + done.stderr  # Hydra logs to stdout; progress bars go to stderr
    subprocess.run(label_cmd(data, clean_out, tiny_nli_2way, workers), check=True, capture_output=True, timeout=300)

    [killed] = killed_out.glob("labels/sst2/*/labels.parquet")
    [clean] = clean_out.glob("labels/sst2/*/labels.parquet")
    a, b = pd.read_parquet(killed), pd.read_parquet(clean)
    assert len(a) == 1600 and a["id"].tolist() == list(range(1600))  # every row exactly once, in order
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-6)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "cache hit" in again.stdout + again.stderr
