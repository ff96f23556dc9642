"""label.engine=ray and predict.engine=ray give the local engine's output, row by row, on a local 2-worker Ray.

One local Ray instance (2 actors of 1 CPU each, plus the CPU Ray Data's reads and writes need) serves the
whole module; the stages see it initialised and leave it running. Skips when Ray (the `ray` extra) is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_stages import make_cfg  # noqa: F401  (fixture)

from distill import artifacts
from distill.errors import DistillError
from distill.stages import label, predict, train

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'distill[ray]')")
RAY = ("ray.num_workers=2", "ray.cpus_per_worker=1")
# Ray and the local engine batch the rows differently: equal probabilities are a float32 property (in bf16, which
# `auto` picks on CPUs where it is fast, a text's probabilities move with its batch's shape).
FP32 = "teacher.dtype=float32"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=3, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    yield
    ray.shutdown()


def rows(n: int = 1100) -> pd.DataFrame:
    """More rows than two predict chunks (512), with empty and missing texts among them."""
    words = "the movie was great good bad terrible boring fun plot actors story".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 12))) for _ in range(n)]
    texts[3], texts[n // 2] = "", None
    return pd.DataFrame({"row": np.arange(n), "sentence": texts, "note": [f"n{i}" for i in range(n)]})


@pytest.mark.parametrize("multi", [(), ("data.multi_label=true", "teacher.label_sets=relative:0.8")],
                         ids=["single-label", "multi-label"])
def test_ray_labels_equal_local_labels_row_by_row(make_cfg, multi):  # noqa: F811
    local_cfg = make_cfg(FP32, "data.pool_size=35", "paths.outputs=${paths.data}/../local", *multi)
    ray_cfg = make_cfg(FP32, "data.pool_size=35", "paths.outputs=${paths.data}/../ray", "label.engine=ray", *RAY,
                       *multi)
    local = pd.read_parquet(label.run(local_cfg)["labels_path"])
    result = label.run(ray_cfg)
    remote = pd.read_parquet(result["labels_path"])
    assert not result["cached"] and len(remote) == 35 and list(remote["id"]) == list(range(35))
    # probabilities equal to 1e-5, so the sets a rule makes of them may differ on a borderline text: checked apart
    floats = ("confidence", "labels")
    pd.testing.assert_frame_equal(remote.drop(columns=[c for c in remote if c.startswith("prob_") or c in floats]),
                                  local.drop(columns=[c for c in local if c.startswith("prob_") or c in floats]))
    probs = [c for c in local if c.startswith("prob_")]
    np.testing.assert_allclose(remote[probs].to_numpy(), local[probs].to_numpy(), atol=1e-5)
    folder = artifacts.labels_dir(ray_cfg, "pool")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["teacher"]["template"] == "This example is {}." and meta["n_texts"] == 35
    assert not (folder / "ray-inputs").exists()  # the staged inputs are cleaned up
    assert label.run(ray_cfg)["cached"] is True
    assert ("labels" in remote) == bool(multi)  # multi-label: each text's set, as the local engine's
    if multi:
        assert (remote["labels"] == local["labels"]).mean() >= 0.9


@pytest.mark.parametrize("kind", ["embedding_lr", "finetune"])
def test_ray_predict_with_a_multi_label_student_equals_local(make_cfg, tmp_path, kind):  # noqa: F811
    multi = ("data.multi_label=true", "teacher.label_sets=relative:0.8", f"student.kind={kind}", "student.layers=null")
    cfg = make_cfg(*multi)
    label.run(cfg)
    train.run(cfg)
    source = tmp_path / "new.parquet"
    rows(600).to_parquet(source, index=False)
    local = predict.run(make_cfg(*multi, f"input={source}", f"predict.output={tmp_path / 'local.parquet'}"))
    remote = predict.run(make_cfg(*multi, f"input={source}", f"predict.output={tmp_path / 'ray.parquet'}",
                                  "predict.engine=ray", *RAY))
    got, want = pd.read_parquet(remote["output"]), pd.read_parquet(local["output"])
    assert want["predicted_labels"].notna().sum() == 598  # a label set for every row with a text
    pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-5)


def test_ray_label_resumes_the_shards_a_killed_run_left(make_cfg):  # noqa: F811
    cfg = make_cfg("data.pool_size=35", "label.engine=ray", *RAY)
    whole = pd.read_parquet(label.run(cfg)["labels_path"])
    folder = artifacts.labels_dir(cfg, "pool")
    for name in ("labels.parquet", "meta.json", "shards/part-000001.parquet", "shards/part-000003.parquet"):
        (folder / name).unlink()
    (folder / "ray-inputs").mkdir()  # what a killed run leaves behind
    (folder / "ray-inputs" / "part-000009.parquet").write_text("half written")
    artifacts.label_cache(cfg).unlink()  # else the per-text cache gives the lost shards back without Ray
    again = label.run(cfg)
    assert again["cached"] is False
    assert json.loads((folder / "meta.json").read_text())["n_labelled_this_run"] == 10 + 5
    pd.testing.assert_frame_equal(pd.read_parquet(again["labels_path"]), whole, atol=1e-6)


def test_ray_labels_only_what_the_label_cache_does_not_know(make_cfg):  # noqa: F811
    label.run(make_cfg(FP32, "data.pool_size=25", "label.engine=ray", *RAY))
    # the whole pool (40 texts): Ray labels only the new texts, in shards that mix known and new ones
    grown = label.run(make_cfg(FP32, "data.pool_size=null", "label.engine=ray", *RAY))
    meta = json.loads((Path(grown["labels_path"]).parent / "meta.json").read_text())
    assert meta["n_texts"] == 40 and meta["n_from_cache"] >= 25 and meta["n_labelled_this_run"] > 0
    assert meta["n_from_cache"] + meta["n_labelled_this_run"] == 40
    fresh = label.run(make_cfg(FP32, "data.pool_size=null", "label.cache=false"))
    pd.testing.assert_frame_equal(pd.read_parquet(grown["labels_path"]), pd.read_parquet(fresh["labels_path"]),
                                  atol=1e-5)


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_ray_predictions_equal_local_predictions_row_by_row(make_cfg, tmp_path, ext):  # noqa: F811
    source = tmp_path / f"new{ext}"
    frame = rows()
    {".csv": lambda p: frame.to_csv(p, index=False), ".parquet": lambda p: frame.to_parquet(p, index=False),
     ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True)}[ext](source)
    common = (FP32, "predict.model=teacher", f"input={source}", "predict.threshold=0.4")
    local = predict.run(make_cfg(*common, f"predict.output={tmp_path / ('local' + ext)}"))
    remote = predict.run(make_cfg(*common, f"predict.output={tmp_path / ('ray' + ext)}", "predict.engine=ray", *RAY))
    assert remote["n_rows"] == local["n_rows"] == 1100 and remote["n_missing_text"] == 2
    assert remote["label_counts"] == local["label_counts"]
    read = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True)}[ext]
    pd.testing.assert_frame_equal(read(remote["output"]), read(local["output"]), check_dtype=False, atol=1e-5)


def test_ray_predict_with_the_student_to_a_folder_of_parquet_shards(make_cfg, tmp_path):  # noqa: F811
    cfg = make_cfg("eval.variants=[torch]")
    label.run(cfg)
    train.run(cfg)
    source = tmp_path / "new.parquet"
    rows(700).to_parquet(source, index=False)
    local = predict.run(make_cfg(f"input={source}", f"predict.output={tmp_path / 'local.parquet'}"))
    remote = predict.run(make_cfg(f"input={source}", f"predict.output={tmp_path / 'shards'}", "predict.engine=ray",
                                  *RAY))
    shards = sorted((tmp_path / "shards").glob("*.parquet"))
    assert len(shards) >= 2 and remote["label_counts"] == local["label_counts"]
    got = pd.concat([pd.read_parquet(p) for p in shards]).sort_values("row", ignore_index=True)
    pd.testing.assert_frame_equal(got, pd.read_parquet(local["output"]), check_dtype=False, atol=1e-5)


def test_ray_engine_errors_are_one_line_and_name_the_problem(make_cfg, tmp_path):  # noqa: F811
    source = tmp_path / "new.csv"
    rows(20).to_csv(source, index=False)
    with pytest.raises(DistillError, match="column"):
        predict.run(make_cfg(f"input={source}", "predict.model=teacher", "predict.text_column=body",
                             "predict.engine=ray", *RAY))
    with pytest.raises(DistillError, match="ray.num_workers=5 actors need 6 CPUs"):
        predict.run(make_cfg(f"input={source}", "predict.model=teacher", "predict.engine=ray",
                             "ray.num_workers=5"))


def test_bench_scale_writes_json_and_table(tmp_path, tiny_nli_2way):
    import importlib.util
    from pathlib import Path

    from test_stages import write_sst2_like

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    write_sst2_like(tmp_path / "data")
    out = tmp_path / "bench" / "scale.json"
    results = bench.main(["--n-texts", "30", "--shard-size", "5", "--out", str(out), f"paths.data={tmp_path / 'data'}",
                          f"teacher.model={tiny_nli_2way}"])
    assert json.loads(out.read_text()) == results
    assert set(results) == {"local", "ray-1x2cpu", "ray-2x1cpu", "_meta"}
    for name in ("local", "ray-1x2cpu", "ray-2x1cpu"):
        row = results[name]
        assert row["n_texts"] == 30 and row["texts_per_s"] > 0 and row["steady_texts_per_s"] > 0
        assert row["agreement_with_local"] == 1.0 and row["max_abs_diff_vs_local"] < 1e-5
    assert "| ray-2x1cpu | 30 |" in out.with_suffix(".md").read_text()


def test_ray_predict_never_writes_into_a_folder_that_holds_files(make_cfg, tmp_path):  # noqa: F811
    source, folder = tmp_path / "new.csv", tmp_path / "earlier"
    rows(20).to_csv(source, index=False)
    folder.mkdir()
    (folder / "keep.parquet").write_text("earlier predictions")
    with pytest.raises(DistillError, match="not empty"):
        predict.run(make_cfg(f"input={source}", "predict.model=teacher", f"predict.output={folder}",
                             "predict.engine=ray", *RAY))
    assert (folder / "keep.parquet").read_text() == "earlier predictions"
