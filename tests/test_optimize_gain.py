"""Speed and size as part of acceptance: a variant neither faster than its parent nor smaller is "no gain"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from _fixtures_report import make_optimized_run_result
from deployable.config import PolicyConfig
from deployable.core.records import Evaluation, RunResult
from deployable.gate import gate
from deployable.optimize import NO_GAIN, judge_gain
from deployable.report.html import render_report
from deployable.report.model_card import model_card


def _scaled(ev: Evaluation, factor: float, *, target: str | None = None, batch: int | None = None) -> Evaluation:
    """``ev`` with every p50 (or one target's, one batch size's) multiplied by ``factor``."""
    effs = []
    for eff in ev.efficiency:
        lats = tuple(
            replace(lat, p50_ms=lat.p50_ms * factor)
            if (target in (None, eff.target) and batch in (None, lat.batch_size))
            else lat
            for lat in eff.latency
        )
        effs.append(replace(eff, latency=lats))
    return replace(ev, efficiency=tuple(effs))


def _with(result: RunResult, name: str, *, like: str, factor: float, size: float = 1.0, **where) -> RunResult:
    """``name`` made from ``like``, timed at ``factor`` times its latency (where ``where`` says, else everywhere)
    and sized ``size`` times its file."""
    evs = {e.variant: e for e in result.evaluations}
    variants = {v.name: v for v in result.variants}
    ev = replace(_scaled(evs[like], factor, **where), variant=name)  # unscaled parts: as fast as ``like``
    v = replace(variants[name], parent=like, size_bytes=round(variants[like].size_bytes * size), status="accepted")
    return result.replace(
        evaluations=tuple(ev if e.variant == name else e for e in result.evaluations),
        variants=tuple(v if x.name == name else x for x in result.variants),
    )


def _status(result: RunResult, min_gain: float = 0.05) -> dict[str, tuple[str, str]]:
    return {v.name: (v.status, v.reason) for v in judge_gain(result.variants, result.evaluations, min_gain)}


@pytest.fixture
def optimized() -> RunResult:
    return make_optimized_run_result()


def test_slower_and_larger_than_its_parent_is_no_gain_with_the_numbers(optimized: RunResult) -> None:
    # int8-dynamic made from onnx-fused, but 10% slower everywhere and 2% larger: an FP32 graph with extra nodes
    result = _with(optimized, "int8-dynamic", like="onnx-fused", factor=1.10, size=1.02)
    status, reason = _status(result)["int8-dynamic"]
    assert status == NO_GAIN
    assert reason.startswith("not faster than onnx-fused on any target (edge-cpu batch 1: p50 ")
    fused = next(e for e in result.evaluations if e.variant == "onnx-fused")
    p50 = next(lat.p50_ms for f in fused.efficiency if f.target == "edge-cpu" for lat in f.latency)
    assert f"ms vs {p50:.3g} ms" in reason and "cloud-cpu batch 32" in reason
    assert "nor smaller" in reason and "by the 5% that counts as a gain" in reason


@pytest.mark.parametrize(
    ("factor", "where", "expected"),
    [
        (0.90, {}, "accepted"),  # 10% faster everywhere
        (0.90, {"target": "cloud-cpu", "batch": 32}, "accepted"),  # faster on one target at one batch size is enough
        (0.97, {}, NO_GAIN),  # 3% faster: within the timing noise, not a gain
        (1.0, {}, NO_GAIN),
    ],
)
def test_faster_by_the_minimum_gain_somewhere_is_a_gain(
    optimized: RunResult, factor: float, where: dict, expected: str
) -> None:
    result = _with(optimized, "int8-dynamic", like="onnx-fused", factor=factor, **where)
    assert _status(result)["int8-dynamic"][0] == expected


def test_smaller_is_a_gain_even_when_slower(optimized: RunResult) -> None:
    # fp16 on a CPU: slower (casts), but half the file
    result = _with(optimized, "fp16", like="onnx-fp32", factor=1.3, size=0.5)
    assert _status(result)["fp16"] == ("accepted", "")
    assert _status(_with(optimized, "fp16", like="onnx-fp32", factor=1.3, size=0.97))["fp16"][0] == NO_GAIN


def test_min_gain_zero_asks_only_for_strictly_no_worse(optimized: RunResult) -> None:
    same = _with(optimized, "int8-dynamic", like="onnx-fused", factor=1.0)
    assert _status(same, min_gain=0.0)["int8-dynamic"][0] == "accepted"  # equal counts at 0
    slower = _with(optimized, "int8-dynamic", like="onnx-fused", factor=1.01, size=1.01)
    assert _status(slower, min_gain=0.0)["int8-dynamic"][0] == NO_GAIN


def test_source_rejected_and_unmeasured_variants_are_left_alone(optimized: RunResult) -> None:
    result = _with(optimized, "int8-static", like="onnx-fp32", factor=1.5)
    rejected = replace(next(v for v in result.variants if v.name == "int8-static"), status="rejected", reason="x")
    result = result.replace(variants=tuple(rejected if v.name == "int8-static" else v for v in result.variants))
    unmeasured = result.replace(
        evaluations=tuple(replace(e, efficiency=()) if e.variant == "fp16" else e for e in result.evaluations)
    )
    out = _status(unmeasured)
    assert out["source"] == ("accepted", "")
    assert out["int8-static"] == ("rejected", "x")
    assert out["fp16"][0] == "accepted"  # not smaller, but whether it is faster is unknown
    # the same records in the same order
    assert [v.name for v in judge_gain(result.variants, result.evaluations, 0.05)] == [v.name for v in result.variants]


def test_the_gate_never_selects_a_no_gain_variant(optimized: RunResult) -> None:
    # int8-dynamic is the fastest passing variant on both targets...
    policy = PolicyConfig(checks=["quality.accuracy >= 0"])
    assert {s.variant for s in gate(optimized, policy).selections} == {"int8-dynamic"}
    # ...until it gains nothing over a parent that is just as fast
    result = _with(optimized, "int8-dynamic", like="onnx-fused", factor=1.0)
    result = result.replace(variants=tuple(judge_gain(result.variants, result.evaluations, 0.05)))
    verdict = gate(result, policy)
    for s in verdict.selections:
        assert s.variant not in (None, "int8-dynamic")
        assert "int8-dynamic" not in s.passing
    assert not any(c.variant == "int8-dynamic" for c in verdict.checks)


def test_report_and_card_mark_no_gain(optimized: RunResult) -> None:
    result = _with(optimized, "int8-dynamic", like="onnx-fused", factor=1.0)
    result = result.replace(variants=tuple(judge_gain(result.variants, result.evaluations, 0.05)))
    page = render_report(result)
    assert '<tr class="no-gain" data-variant="int8-dynamic">' in page
    assert '<span class="badge warn">no gain</span>' in page
    assert "<b>No gain</b>: not faster than onnx-fused on any target" in page
    card = model_card(result)
    assert "(4 accepted, 1 rejected, 1 no gain)" in card
    assert "| **no gain**: not faster than onnx-fused" in card
    assert "The variant `int8-dynamic` is within tolerance but no gain, so never selected" in card
