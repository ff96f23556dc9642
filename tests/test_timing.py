"""distill.evaluation.timing.throughput: warm-up calls are not timed, and with repeats the fastest pass counts."""
from __future__ import annotations

import time

import pytest

from distill.evaluation.timing import throughput


def test_fastest_pass_counts_and_every_call_is_in_the_latencies():
    calls = []

    def predict(batch, bs):
        calls.append(len(batch))
        # Warm-up (2 calls) and the first timed pass (2 calls) are slow: something else had the machine.
        time.sleep(0.05 if len(calls) <= 4 else 0.001)

    result = throughput(predict, ["a", "b", "c"], [2], n_texts=4, warmup_batches=2, repeats=3)[2]
    assert calls == [2] * 8  # 2 warm-up + 3 passes of 2 batches of the 4 cycled texts
    assert result["repeats"] == 3 and result["n_texts"] == 4
    assert result["seconds"] < 0.02  # the fastest pass, not the disturbed first one
    assert result["latency_ms_p95"] > 20  # the slow calls are still in the percentiles


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats"):
        throughput(lambda batch, bs: None, ["a"], [1], repeats=0)


def test_a_time_budget_stops_further_passes_but_never_the_first():
    calls = []

    def predict(batch, bs):
        calls.append(len(batch))
        time.sleep(0.03)

    # One pass is 2 calls (~0.06 s); a second would take the passes to ~0.12 s, past a 0.1 s budget.
    result = throughput(predict, ["a", "b"], [1], n_texts=2, warmup_batches=0, repeats=5, budget_s=0.1)[1]
    assert result["repeats"] == 1 and len(calls) == 2
    # A budget smaller than one pass still times one pass.
    assert throughput(predict, ["a"], [1], n_texts=1, warmup_batches=0, repeats=3, budget_s=0.0)[1]["repeats"] == 1
    # A roomy budget allows every pass.
    assert throughput(predict, ["a"], [1], n_texts=1, warmup_batches=0, repeats=3, budget_s=10.0)[1]["repeats"] == 3
