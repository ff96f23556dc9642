"""scripts/bench_timing.py in-process on tiny models: each setting's evals, their spread, the JSON and table."""
from __future__ import annotations

import json

from conftest import load_script
from test_stages import write_sst2_like


def test_bench_timing_times_the_same_students_with_each_setting(tmp_path, tiny_nli_2way, tiny_encoder):
    write_sst2_like(tmp_path / "data")
    out = tmp_path / "bench" / "timing.json"
    load_script("bench_timing").main(["--runs", "2", "--settings", "eval.repeats=1;eval.repeats=2",
                        "--out", str(out), f"paths.data={tmp_path / 'data'}", f"paths.outputs={tmp_path / 'out'}",
                        f"teacher.model={tiny_nli_2way}", f"student.model={tiny_encoder}", "data.pool_size=24",
                        "train.epochs=1", "train.batch_size=8", "eval.batch_sizes=[32]", "eval.bench_texts=32",
                        "eval.warmup_batches=1", "eval.variants=[torch]", "eval.plots=false"])
    results = json.loads(out.read_text())
    assert [r["setting"] for r in results["rows"]] == ["eval.repeats=1", "eval.repeats=2"]
    for row in results["rows"]:
        assert len(row["runs"]) == 2
        for run in row["runs"]:
            assert run["teacher_samples_per_s_32"] > 0 and run["seconds"] > 0
            assert len(run["speedup_32"]) == 1 and all(v > 0 for v in run["speedup_32"].values())
    table = out.with_suffix(".md").read_text()
    assert "| eval.repeats=1 | 2 |" in table and "(1." in table  # lowest to highest, with their ratio
