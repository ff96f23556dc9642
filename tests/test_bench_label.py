"""scripts/bench_label.py in-process on a tiny NLI model and 8 SST-2-shaped texts: the JSON and table it writes."""
from __future__ import annotations

import json

import pytest
from conftest import load_script
from test_stages import write_sst2_like

pytest.importorskip("txtai", reason="bench_label's txtai baseline needs txtai: pip install 'distill[txtai]'")

METRICS = {"texts_per_s", "seconds", "setup_s", "padding_efficiency", "peak_rss_mb", "accuracy", "agreement_with_pipeline",
           "max_abs_diff_vs_pipeline", "agreement_with_fp32_pipeline", "max_abs_diff_vs_fp32_pipeline"}


def bench_label():
    return load_script("bench_label")


def test_bench_label_writes_json_and_table(tmp_path, tiny_nli_2way, capsys):
    write_sst2_like(tmp_path / "data", n_dev=8)
    out = tmp_path / "bench" / "label.json"
    results = bench_label().main(["--datasets", "sst2", "--out", str(out), f"paths.data={tmp_path / 'data'}",
                                  f"teacher.model={tiny_nli_2way}", "teacher.device=cpu", "teacher.dtype=float32",
                                  "teacher.batch_size=5"])

    assert json.loads(out.read_text()) == results
    assert set(results) == {"sst2", "_meta"}
    sst2 = results["sst2"]
    assert set(sst2) == {"n_texts", "n_labels", "contenders", "agreement_with_pipeline", "agreement_with_fp32_pipeline",
                         "speedup_vs_pipeline", "speedup_vs_txtai", "speedup_vs_pipeline_matched"}
    # distill in float32, the pipeline's own precision: no second, precision-matched pipeline
    assert sst2["speedup_vs_pipeline_matched"] is None
    assert (sst2["n_texts"], sst2["n_labels"]) == (8, 2)
    assert set(sst2["contenders"]) == {"distill", "pipeline", "txtai"}
    for name, r in sst2["contenders"].items():
        assert set(r) == METRICS | ({"rechecked_texts"} if name == "distill" else set()), name
        assert r["texts_per_s"] > 0 and r["peak_rss_mb"] > 0 and 0 < r["padding_efficiency"] <= 1
        # Same model, same template (txtai's default is the pipeline's): same labels, same probabilities.
        assert r["agreement_with_pipeline"] == 1.0 and r["max_abs_diff_vs_pipeline"] < 1e-4, name
        # in float32 the pipeline contender is itself the float32 reference
        assert r["agreement_with_fp32_pipeline"] == r["agreement_with_pipeline"], name
    assert sst2["agreement_with_pipeline"] == sst2["contenders"]["distill"]["agreement_with_pipeline"]
    # txtai forwards one pair at a time (no padding); distill's length sort pads no more than input order.
    assert sst2["contenders"]["txtai"]["padding_efficiency"] == 1.0
    assert sst2["contenders"]["distill"]["padding_efficiency"] >= sst2["contenders"]["pipeline"]["padding_efficiency"]
    meta = results["_meta"]
    assert meta["model"] == str(tiny_nli_2way) and meta["dtype"] == "float32"
    assert {"torch", "transformers", "txtai"} <= set(meta["versions"]) and meta["machine"]["cores"] >= 1
    assert meta["contenders"]["sst2"]["txtai"]["template"] == "This example is {}."
    assert {c["dtype"] for c in meta["contenders"]["sst2"].values()} == {"float32"}

    table = out.with_suffix(".md").read_text()
    assert table.count("| sst2 |") == 3 and "txtai" in table
    assert "| sst2 | distill |" in capsys.readouterr().out


def test_padding_efficiency_counts_pad_tokens_per_batch():
    efficiency = bench_label().padding_efficiency
    assert efficiency([1, 4, 1, 4], 2) == 10 / 16  # each batch padded to 4
    assert efficiency([1, 4, 1, 4], 2, order=[1, 3, 0, 2]) == 1.0  # sorted: no padding
    assert efficiency([3, 2, 1], 2) == 6 / 7  # a short last batch pads only to its own longest


def test_n_texts_caps_every_set_or_each():
    caps = bench_label().caps
    assert caps("100") == 100
    assert caps("ag_news=300,sst2=50") == {"ag_news": 300, "sst2": 50}


def distill_and_pipeline(tmp_path, model, *overrides, contenders="distill,pipeline") -> dict:
    """bench_label on 8 SST-2-shaped dev texts, distill against the pipeline on the CPU."""
    write_sst2_like(tmp_path / "data", n_dev=8)
    return bench_label().main(["--datasets", "sst2", "--contenders", contenders, "--out",
                               str(tmp_path / "label.json"), f"paths.data={tmp_path / 'data'}",
                               f"teacher.model={model}", "teacher.device=cpu", *overrides])


def test_bench_label_with_label_workers(tmp_path, tiny_nli_2way):
    results = distill_and_pipeline(tmp_path, tiny_nli_2way, "teacher.dtype=float32", "label.workers=2")
    distill = results["sst2"]["contenders"]["distill"]
    assert distill["agreement_with_pipeline"] == 1.0 and distill["max_abs_diff_vs_pipeline"] < 1e-4
    assert 0 < distill["padding_efficiency"] <= 1
    assert results["_meta"]["contenders"]["sst2"]["distill"]["processes"] == 2


def test_reduced_precision_runs_the_pipeline_at_its_default_and_at_distills_precision(tmp_path, tiny_nli_2way):
    """The pipeline runs as its users run it (float32), the reference reduced precision must agree with; a
    second, precision-matched pipeline runs in distill's float16 for a same-precision speedup."""
    results = distill_and_pipeline(tmp_path, tiny_nli_2way, "teacher.dtype=float16", "teacher.recheck_margin=0",
                                   contenders="distill,pipeline,pipeline_matched")
    sst2, dtypes = results["sst2"], {c: i["dtype"] for c, i in results["_meta"]["contenders"]["sst2"].items()}
    assert dtypes == {"distill": "float16", "pipeline": "float32", "pipeline_matched": "float16"}
    contenders = sst2["contenders"]
    pipeline, matched, distill = contenders["pipeline"], contenders["pipeline_matched"], contenders["distill"]
    assert pipeline["max_abs_diff_vs_fp32_pipeline"] == 0.0  # the float32 pipeline is its own reference
    # half-precision rounding moves probabilities away from float32's
    assert distill["max_abs_diff_vs_fp32_pipeline"] > 0 and matched["max_abs_diff_vs_fp32_pipeline"] > 0
    assert sst2["agreement_with_fp32_pipeline"] == distill["agreement_with_fp32_pipeline"]
    assert sst2["speedup_vs_pipeline_matched"] == distill["texts_per_s"] / matched["texts_per_s"]


def test_near_ties_rechecked_in_float32_by_label_workers(tmp_path, tiny_nli_2way):
    """Every text a near tie (margin 0.999): the label workers score all of them again in float32, so reduced
    precision ends with float32's probabilities, and the count comes back from the worker processes."""
    results = distill_and_pipeline(tmp_path, tiny_nli_2way, "teacher.dtype=float16", "teacher.recheck_margin=0.999",
                                   "label.workers=2")
    sst2 = results["sst2"]
    distill = sst2["contenders"]["distill"]
    assert distill["rechecked_texts"] == sst2["n_texts"]
    assert distill["agreement_with_fp32_pipeline"] == 1.0 and distill["max_abs_diff_vs_fp32_pipeline"] < 1e-4
    assert results["_meta"]["contenders"]["sst2"]["distill"]["recheck_margin"] == 0.999
