"""What the gate raises for comparisons the sample size does not decide, and variants that share a comparison.

A synthetic gate: 400 test samples in four channels of 100, production right on 80%. The source is 20 samples better
on email (PASS), 5 worse on phone (a regression past the slice margin that Holm does not show: WARN), 2 better and
1 worse on chat and identical on web (UNDECIDED). onnx-fp32 and fp16 are right and wrong on the same samples as the
source; onnx-fused is the source with one more error on web (a WARN: past the margin); int8-dynamic is production.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from _fixtures_report import make_optimized_run_result
from deployable.cli import _verdict
from deployable.config import ComparisonConfig, PolicyConfig
from deployable.core.records import RunResult, Verdict
from deployable.gate import Baseline, gate, summarize
from deployable.report.model_card import model_card


def _case() -> tuple[np.ndarray, dict[str, np.ndarray], SimpleNamespace]:
    n = 400
    channel = np.repeat(np.array(["chat", "email", "phone", "web"]), 100)
    base = (np.arange(n) % 5) != 0  # 80% right, 20 wrong per channel
    src = base.copy()
    email, phone, chat, web = (np.flatnonzero(channel == c) for c in ("email", "phone", "chat", "web"))
    src[email[~base[email]]] = True  # 20 better
    src[phone[base[phone]][:5]] = False  # 5 worse
    src[chat[~base[chat]][:2]] = True  # 2 better
    src[chat[base[chat]][:1]] = False  # 1 worse
    fused = src.copy()
    fused[web[1]] = False
    correct = {"source": src, "onnx-fp32": src.copy(), "fp16": src.copy(), "onnx-fused": fused, "int8-dynamic": base}
    split = SimpleNamespace(labels=np.tile(np.arange(4), 100), slices={"channel": channel})
    return base, correct, split


def _gate(inconclusive: str = "warn") -> tuple[RunResult, Verdict]:
    base, correct, split = _case()
    result = make_optimized_run_result()
    policy = PolicyConfig(comparison=ComparisonConfig(per_class=False, inconclusive=inconclusive))
    verdict = gate(result, policy, baseline=Baseline(name="production", correct=base), split=split, correct=correct)
    return result.replace(verdict=verdict), verdict


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    return text[start : text.find("\n## ", start + 1)]


def _status(v: Verdict, variant: str, group: str) -> str:
    return next(c.status for c in v.checks if c.variant == variant and c.details["group"] == group)


def test_undecided_is_a_state_and_a_regression_past_the_margin_still_warns() -> None:
    _, v = _gate()
    assert v.status == "PASS"
    assert _status(v, "source", "overall") == "PASS"
    assert _status(v, "source", "channel=email") == "PASS"
    assert _status(v, "source", "channel=chat") == "UNDECIDED"  # +1 point: not decided, nothing to act on
    assert _status(v, "source", "channel=web") == "UNDECIDED"  # no difference at all
    phone = next(c for c in v.checks if c.variant == "source" and c.details["group"] == "channel=phone")
    assert phone.status == "WARN" and phone.message.startswith("regression past the margin, not yet significant")
    assert next(c for c in v.comparisons if c.variant == "source" and c.group == "channel=phone").outcome == (
        "INCONCLUSIVE"
    )
    assert _status(v, "onnx-fused", "channel=web") == "WARN"  # one error more than production: -1 point
    assert [_status(v, "int8-dynamic", f"channel={c}") for c in ("chat", "email", "phone", "web")] == ["UNDECIDED"] * 4

    s = summarize(v)
    # source's phone, onnx-fused's phone and web: each shared comparison counted once (not onnx-fp32's and fp16's)
    assert [(c.variant, c.details["group"]) for c in s.warnings] == [
        ("source", "channel=phone"),
        ("onnx-fused", "channel=phone"),
        ("onnx-fused", "channel=web"),
    ]
    # source: chat, web; onnx-fused: chat; int8-dynamic: 4 slices
    assert len(s.undecided) == 7
    assert s.undecided_line() == (
        "7 comparisons undecided at n = 100; the largest would need about 1,849 samples (channel=chat); "
        "5 with no disagreement, so no size estimate"
    )


def test_inconclusive_fail_still_fails_every_undecided_comparison() -> None:
    _, v = _gate("fail")
    assert _status(v, "source", "channel=chat") == "FAIL"
    assert _status(v, "source", "channel=phone") == "FAIL"
    assert "UNDECIDED" not in {c.status for c in v.checks}
    assert v.status == "FAIL"  # int8-dynamic (the cheapest) and every other variant have an undecided slice
    assert any("source: accuracy vs production (channel=chat): inconclusive" in r for r in v.reasons)


def test_variants_with_the_same_results_share_one_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    import deployable.gate.stats as stats

    calls = []
    real = stats.compare

    def counting(variant: str, *args: object, **kw: object) -> object:
        calls.append(variant)
        return real(variant, *args, **kw)

    monkeypatch.setattr(stats, "compare", counting)
    result, v = _gate()
    assert calls == ["source", "onnx-fused", "int8-dynamic"]  # computed once for source, onnx-fp32 and fp16
    by = {(c.variant, c.group): c for c in v.comparisons}
    for copy in ("onnx-fp32", "fp16"):
        for c in v.comparisons:
            if c.variant == "source":
                shared = by[(copy, c.group)]
                assert shared.same_as == "source"
                assert shared.replace(variant="source", same_as=None) == c
        assert all(c.details["same_as"] == "source" for c in v.checks if c.variant == copy and "group" in c.details)
    assert all(c.same_as is None for c in v.comparisons if c.variant in ("source", "onnx-fused", "int8-dynamic"))
    assert summarize(v).shared == {"source": ("onnx-fp32", "fp16")}
    # the shared comparison and the new status survive results.json
    assert RunResult.from_json(result.to_json()).verdict == v


def test_terminal_prints_counts_that_mean_something(capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = _gate()
    _verdict(result)
    out = capsys.readouterr().out
    assert (
        "  3 warnings; 7 comparisons undecided at this sample size, n = 100; the largest would need about 1,849 "
        "samples (channel=chat); 5 with no disagreement, so no size estimate: see the report's verdict"
    ) in out
    assert "  onnx-fp32, fp16: same per-sample results as source (its comparisons)" in out


def test_model_card_summarizes_the_undecided_comparisons() -> None:
    result, _ = _gate()
    card = model_card(result)
    verdict = _section(card, "Gate verdict")
    assert (
        "Not decided at this sample size: 7 comparisons undecided at n = 100; the largest would need about 1,849 "
        "samples (channel=chat); 5 with no disagreement, so no size estimate"
    ) in verdict
    assert "not decided at this sample size:" not in verdict  # no undecided check listed in full
    assert verdict.count("regression past the margin, not yet significant") == 3  # the warnings are
    assert "onnx-fp32, fp16: same per-sample results as source" in verdict
    comparison = _section(card, "Comparison with the baseline")
    rows = [line for line in comparison.splitlines() if line.startswith("| `")]
    assert not any("`onnx-fp32`" in r or "`fp16`" in r for r in rows)  # shared: shown once, as source's
    assert not any(("| channel=chat |" in r or "| channel=web |" in r) for r in rows if r.startswith("| `source`"))
    assert any("| `source` | channel=phone |" in r for r in rows)  # a warning stays in the table
    assert sum("| overall |" in r for r in rows) == 3
    assert "Not in the table: 7 slice and class comparisons undecided at n = 100" in comparison


def test_report_folds_the_undecided_slices_of_the_chosen_variant_under_one_line() -> None:
    from deployable.report.html import render_report

    result, _ = _gate()
    page = render_report(result)
    # int8-dynamic is chosen: its 4 undecided slices fold under their own line, the run's line is kept too
    assert "<summary>4 comparisons undecided at n = 100; 4 with no disagreement, so no size estimate</summary>" in page
    assert "7 comparisons undecided at n = 100" in page
    assert "<summary>3 warnings</summary>" in page
    assert "Shared comparisons: onnx-fp32, fp16: same per-sample results as source (its comparisons)." in page
