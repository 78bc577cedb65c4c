r"""Paired statistics of the release gate: is the candidate worse than production on the same test samples?

Both models are scored on the same ``N`` samples, ``c_i, b_i ∈ {0, 1}`` (candidate / baseline correct). Only the
discordant pairs carry information about the difference:

.. math::

    \text{better} = \#\{c_i = 1, b_i = 0\}, \quad \text{worse} = \#\{c_i = 0, b_i = 1\}, \quad
    \hat d = \frac{\text{better} - \text{worse}}{N} = \overline{c} - \overline{b}.

A group (``overall`` or one slice) with margin ``m`` gets one of three outcomes from an interval ``[L, U]`` for
its true difference ``d`` (:func:`non_inferiority`):

- ``PASS`` when ``L > -m``: evidence that the candidate is no worse than the margin (non-inferiority);
- ``FAIL`` when ``U < -m``: evidence that it is worse than the margin;
- ``INCONCLUSIVE`` otherwise, with the number of samples that would decide (:func:`samples_needed`).

Error control (:func:`compare`), with ``α = ComparisonConfig.alpha`` and ``G`` compared groups:

- FAIL is a union-intersection claim ("some group regressed"), so its upper bounds are corrected for
  multiplicity by Holm's step-down: with ``r`` groups not yet failed, every one whose one-sided ``1 - α/r`` upper
  bound is below ``-m`` fails; repeat with the smaller ``r`` until nothing new fails. This is Holm's procedure on
  the one-sided tests of ``H_g: d_g ≥ -m_g``, and it controls the family-wise false-FAIL rate strongly: let ``T``
  be the ``t`` groups with ``d_g ≥ -m_g``. At the first round that fails a member of ``T``, none of ``T`` has
  failed yet, so ``r ≥ t`` and its bound ``U_g(α/r) ≥ U_g(α/t)`` (bounds are nested in the level). Hence
  ``P(any false FAIL) ≤ P(∪_{g∈T} U_g(α/t) < d_g) ≤ t · α/t = α`` by the union bound, whatever the dependence
  between groups (slices may overlap and all are inside ``overall``), given that each ``U_g(a)`` is a one-sided
  ``1 - a`` bound (asymptotically for the bootstrap; see the hull below for small samples). "No true difference"
  is the case ``T`` = every group.
- PASS needs no correction: each group's false-PASS rate is at most ``α``, and where the gate requires every
  group to pass (``inconclusive: fail``) that is an intersection-union test (Berger 1982):
  ``P(release | some group g has d_g ≤ -m_g) ≤ P(group g passes) ≤ α``. Its lower bound is one-sided at ``α``.
  Correcting it too would make the overall PASS harder whenever a slice column is added.

So a group's interval is asymmetric: ``L`` at one-sided ``α``, ``U`` at one-sided ``α_g = α/r`` (the Holm level
at which it failed, or the final one); its ``level`` is ``1 - α - α_g`` (``1 - 2α``, the usual non-inferiority
interval, when there are no slices).

Each bound is the hull of two: the paired bootstrap percentile bound (:func:`paired_bootstrap_interval`) and the
Bonett–Price adjusted Wald bound (Bonett & Price 2012, one pseudo-pair added to each discordant cell). In large
samples they agree to within about 1% of the width (the adjusted Wald bound is slightly wider); with few
discordant pairs the bootstrap is over-confident (no discordant pair gives the interval ``[0, 0]``, a PASS on 20
samples), while the adjusted Wald bound keeps its coverage. A hull misses only when both bounds miss, so it is
never less valid than either.

``p_value`` is the exact McNemar test of ``d = 0`` (:func:`mcnemar_exact`) and ``p_adjusted`` its Holm correction
over the same family of groups: reported evidence of any difference, not the margin decision.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from deployable.config import ComparisonConfig
from deployable.core.paired import bootstrap_differences as _bootstrap_differences
from deployable.core.paired import difference_bounds, difference_n_to_decide
from deployable.core.records import Comparison, Interval

PASS = "PASS"
FAIL = "FAIL"
INCONCLUSIVE = "INCONCLUSIVE"
OVERALL = "overall"

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "OVERALL",
    "PASS",
    "compare",
    "holm",
    "mcnemar_exact",
    "non_inferiority",
    "paired_bootstrap_interval",
    "samples_needed",
]


# ---------------------------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------------------------


def _as_correct(x: Any, name: str) -> np.ndarray:
    """Per-sample correctness as a boolean array of shape ``(N,)``; booleans or 0/1 numbers accepted."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 1-D array of booleans (correct or not), but got {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of shape (N,), but found shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, but the array is empty")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected booleans or 0/1 numbers, but found dtype {arr.dtype}")
    bad = ~((arr == 0) | (arr == 1))  # NaN fails both comparisons, so it is caught here too
    if bad.any():
        raise ValueError(
            f"{name}: expected booleans or 0/1 values, but found {arr[bad][0]!r} (pass `y_pred == y_true`)"
        )
    return arr.astype(bool)


def _pair(correct_candidate: Any, correct_baseline: Any) -> tuple[np.ndarray, np.ndarray]:
    c = _as_correct(correct_candidate, "correct_candidate")
    b = _as_correct(correct_baseline, "correct_baseline")
    if c.shape != b.shape:
        raise ValueError(
            f"correct_candidate and correct_baseline: expected the same samples (paired), but found "
            f"{c.shape[0]} and {b.shape[0]} samples"
        )
    return c, b


def _discordant(c: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """``(better, worse)``: candidate right and baseline wrong, and the reverse."""
    return int(np.count_nonzero(c & ~b)), int(np.count_nonzero(~c & b))


def _check_tail(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < float(value) < 0.5:
        raise ValueError(f"{name}: expected a one-sided level strictly between 0 and 0.5, but found {value!r}")
    return float(value)


def _check_margin(margin: Any) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.floating)) or not 0 <= margin < 1:
        raise ValueError(f"margin: expected an accuracy margin in [0, 1) (0.01 = one point), but found {margin!r}")
    return float(margin)


def _rng(seed: int | np.random.Generator, *keys: str) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    # Keyed by group name: a group's interval does not change when other slices are added or reordered.
    return np.random.default_rng([int(seed) % 2**64, *(zlib.crc32(k.encode()) for k in keys)])


# ---------------------------------------------------------------------------------------------------------------------
# Tests and intervals
# ---------------------------------------------------------------------------------------------------------------------


def mcnemar_exact(better: int, worse: int) -> float:
    r"""Two-sided exact McNemar p-value of "no difference" from the discordant pair counts.

    Under ``H0: P(better) = P(worse)`` each of the ``n = better + worse`` discordant pairs goes either way with
    probability 1/2, so with ``k = min(better, worse)`` and ``X ~ Binomial(n, 1/2)``:

    .. math:: p = \min\bigl(1,\; 2\,P(X \le k)\bigr)

    (the binomial distribution at 1/2 is symmetric, so this is scipy's ``binomtest(worse, n, 0.5).pvalue``).

    Args:
        better: pairs where the candidate is right and the baseline wrong (non-negative integer).
        worse: pairs where the candidate is wrong and the baseline right.

    Returns:
        The p-value in ``(0, 1]``; 1.0 when there are no discordant pairs.
    """
    for name, v in (("better", better), ("worse", worse)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}: expected a non-negative integer count of pairs, but found {v!r}")
    n = int(better) + int(worse)
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(int(better), int(worse)), n, 0.5)))


def _check_n_resamples(n_resamples: Any) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples: expected a positive integer, but found {n_resamples!r}")
    return int(n_resamples)


def paired_bootstrap_interval(
    correct_candidate: np.ndarray,
    correct_baseline: np.ndarray,
    *,
    level: float,
    n_resamples: int,
    seed: int | np.random.Generator,
) -> Interval:
    r"""Accuracy difference (candidate − baseline) with a paired bootstrap percentile interval.

    Each resample draws ``N`` sample indices with replacement and uses the *same* indices for both models, so the
    interval reflects their disagreement, not two independent accuracies' noise. With ``d^*_j`` the difference on
    resample ``j`` and ``a = (1 - level) / 2``:

    .. math:: [L, U] = \bigl[\,Q_{a}(d^*),\; Q_{1-a}(d^*)\,\bigr]

    (empirical quantiles, linear interpolation; scipy's ``bootstrap(..., paired=True, method="percentile")``). The
    resamples are drawn as counts of better / worse / tied pairs (see :func:`_bootstrap_differences`), which have
    exactly the index-resampling distribution.

    Args:
        correct_candidate: whether the candidate is right on each sample, shape ``(N,)``, booleans or 0/1.
        correct_baseline: the same for the baseline on the same samples, shape ``(N,)``.
        level: two-sided confidence level in ``(0, 1)``.
        n_resamples: number of bootstrap resamples.
        seed: seed or generator; the same seed gives the same interval.

    Returns:
        :class:`~deployable.core.records.Interval` with ``value = mean(c) - mean(b)``.
    """
    c, b = _pair(correct_candidate, correct_baseline)
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ValueError(f"level: expected a confidence level strictly between 0 and 1, but found {level!r}")
    n_resamples = _check_n_resamples(n_resamples)
    better, worse = _discordant(c, b)
    n = c.shape[0]
    d = _bootstrap_differences(better, worse, n, n_resamples, _rng(seed))
    a = (1.0 - float(level)) / 2.0
    low, high = np.quantile(d, [a, 1.0 - a])
    return Interval(value=(better - worse) / n, low=float(low), high=float(high), level=float(level))


def holm(p_values: Sequence[float]) -> np.ndarray:
    r"""Holm–Bonferroni adjusted p-values (strong family-wise error control, any dependence).

    With the ``m`` p-values sorted ``p_{(1)} ≤ … ≤ p_{(m)}``:

    .. math:: \tilde p_{(i)} = \min\Bigl(1,\; \max_{j \le i} (m - j + 1)\, p_{(j)}\Bigr)

    returned in the input order. Rejecting every hypothesis with ``p̃ ≤ α`` is Holm's step-down test at ``α``.

    Args:
        p_values: shape ``(m,)``, each in ``[0, 1]``.

    Returns:
        Adjusted p-values, shape ``(m,)``, float64: ``p̃ ≥ p``, capped at 1, ordered like ``p``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values: expected a 1-D sequence of p-values, but found shape {p.shape}")
    if p.size == 0:
        return p.copy()
    if np.isnan(p).any() or p.min() < 0 or p.max() > 1:
        raise ValueError(f"p_values: expected values in [0, 1], but found {p[np.isnan(p) | (p < 0) | (p > 1)][0]!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m, dtype=np.float64)
    out[order] = adjusted
    return out


def non_inferiority(interval: Interval, margin: float) -> str:
    """Decide a non-inferiority comparison from an interval for the difference ``d`` (candidate − baseline).

    - ``"PASS"`` when ``interval.low > -margin``: the candidate is no worse than the margin;
    - ``"FAIL"`` when ``interval.high < -margin``: it is worse than the margin;
    - ``"INCONCLUSIVE"`` otherwise (the interval contains ``-margin``; a bound exactly at ``-margin`` decides
      nothing).

    The interval's one-sided tail levels are the error rates of the two claims (see the module docstring).
    """
    margin = _check_margin(margin)
    if math.isnan(interval.low) or math.isnan(interval.high):
        raise ValueError(f"interval: expected finite bounds, but found [{interval.low}, {interval.high}]")
    if interval.low > interval.high:
        raise ValueError(f"interval: expected low <= high, but found [{interval.low}, {interval.high}]")
    if interval.low > -margin:
        return PASS
    if interval.high < -margin:
        return FAIL
    return INCONCLUSIVE


def samples_needed(
    correct_candidate: np.ndarray,
    correct_baseline: np.ndarray,
    margin: float,
    *,
    alpha: float,
    power: float = 0.8,
) -> int | None:
    r"""Samples that would decide the comparison (PASS or FAIL) at the observed discordance and difference.

    Normal approximation for paired proportions (Connor 1987; Lachin 1992), in the Wald form that the decision
    interval uses: with the observed discordance ``p_d = (better + worse) / N`` and difference
    ``d = (better - worse) / N``, the per-pair variance is ``p_d - d²``, and the bound on the side that would
    decide (``d > -m``: the lower bound, PASS; ``d < -m``: the upper bound, FAIL) clears ``-m`` with probability
    ``power`` when

    .. math:: n = \left\lceil \frac{(z_{1-\alpha} + z_{\text{power}})^2\,(p_d - d^2)}{(d + m)^2} \right\rceil

    (Connor uses the null variance ``p_d`` for the ``z_{1-α}`` term when ``m = 0``; with a margin the null
    variance needs a restricted estimate, and the alternative variance is what the bootstrap interval estimates.)
    ``n`` counts samples of the group the arrays hold (for a slice: samples of that slice).

    Args:
        correct_candidate: candidate correct or not, shape ``(N,)``.
        correct_baseline: baseline correct or not on the same samples, shape ``(N,)``.
        margin: accuracy the candidate may lose (``≥ 0``).
        alpha: one-sided level of the bound that would decide (in :func:`compare`: ``α`` for PASS, the Holm level
            for FAIL).
        power: probability of deciding at that size.

    Returns:
        The number of samples (at least 1), or None when no size decides: no discordant pair (nothing to estimate
        the variance from) or an observed difference exactly at ``-margin``.
    """
    c, b = _pair(correct_candidate, correct_baseline)
    margin = _check_margin(margin)
    alpha = _check_tail(alpha, "alpha")
    if isinstance(power, bool) or not isinstance(power, (int, float, np.floating)) or not 0 < power < 1:
        raise ValueError(f"power: expected a probability strictly between 0 and 1, but found {power!r}")
    better, worse = _discordant(c, b)
    return difference_n_to_decide(better, worse, int(c.shape[0]), margin, alpha, power)


# ---------------------------------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------------------------------


class _Group:
    """One compared group: its counts and its bootstrap replicates (drawn once, so bounds nest across levels)."""

    def __init__(self, name: str, c: np.ndarray, b: np.ndarray, margin: float, cfg: ComparisonConfig) -> None:
        self.name, self.c, self.b, self.margin = name, c, b, margin
        self.n = int(c.shape[0])
        self.better, self.worse = _discordant(c, b)
        self.value = (self.better - self.worse) / self.n
        self.replicates = _bootstrap_differences(
            self.better, self.worse, self.n, cfg.n_bootstrap, _rng(cfg.seed, "compare", name)
        )

    def bounds(self, tail_low: float, tail_high: float) -> tuple[float, float]:
        """Hull of the bootstrap percentile and adjusted Wald bounds at one-sided levels ``tail_low``/``tail_high``."""
        return difference_bounds(self.better, self.worse, self.n, tail_low, tail_high, self.replicates)


def compare(
    variant: str,
    correct_candidate: np.ndarray,
    correct_baseline: np.ndarray,
    groups: Mapping[str, np.ndarray],
    cfg: ComparisonConfig,
) -> list[Comparison]:
    """Compare a candidate with the baseline overall and on every slice, with family-wise error control.

    Groups: ``overall`` (every sample, margin ``cfg.margin``), then each slice of ``groups`` with at least
    ``cfg.min_slice_n`` samples (margin ``cfg.slice_margin``); smaller slices are not compared and do not count
    towards the multiplicity. With ``G`` compared groups and ``α = cfg.alpha``:

    1. FAIL by Holm's step-down on the one-sided upper bounds: ``r = G``; every group not yet failed whose upper
       bound at one-sided ``α/r`` is below ``-margin`` fails; ``r`` becomes the number not failed; repeat until
       nothing new fails. The family-wise probability of failing any group whose true difference is ``≥ -margin``
       is at most ``α`` (proof in the module docstring).
    2. PASS when the lower bound at one-sided ``α`` is above ``-margin`` (no correction: requiring every group to
       pass is an intersection-union test).
    3. Otherwise INCONCLUSIVE, with ``n_needed`` from :func:`samples_needed` at the level of the side that would
       decide (``α`` if the observed difference is above ``-margin``, else the final Holm level) and power 0.8.

    ``difference`` is that interval: ``low`` at one-sided ``α``, ``high`` at the group's Holm level ``α_g``,
    ``level = 1 - α - α_g``; each bound is the hull of the paired bootstrap (``cfg.n_bootstrap`` resamples, seeded
    by ``cfg.seed`` and the group name) and the Bonett–Price adjusted Wald bound. ``p_value`` is
    :func:`mcnemar_exact`, ``p_adjusted`` its :func:`holm` correction over the ``G`` groups.

    Args:
        variant: the candidate's name, copied to each record.
        correct_candidate: candidate correct or not, shape ``(N,)``.
        correct_baseline: baseline correct or not on the same samples, shape ``(N,)``.
        groups: slice name (``"<column>=<value>"``) to boolean mask of shape ``(N,)``; may overlap.
        cfg: margins, ``alpha``, bootstrap size and seed, minimum slice size.

    Returns:
        One :class:`~deployable.core.records.Comparison` per compared group, ``overall`` first, then the slices in
        the order of ``groups``.
    """
    c, b = _pair(correct_candidate, correct_baseline)
    n = c.shape[0]
    compared = [_Group(OVERALL, c, b, float(cfg.margin), cfg)]
    for name, mask in groups.items():
        if name == OVERALL:
            raise ValueError(f"groups: '{OVERALL}' is reserved for all samples; name slices '<column>=<value>'")
        m = np.asarray(mask)
        if m.dtype.kind != "b" or m.shape != (n,):
            raise ValueError(
                f"groups['{name}']: expected a boolean mask of shape ({n},), but found dtype {m.dtype} and shape "
                f"{m.shape}"
            )
        if int(m.sum()) >= cfg.min_slice_n:
            compared.append(_Group(name, c[m], b[m], float(cfg.slice_margin), cfg))

    alpha = float(cfg.alpha)
    total = len(compared)
    fail_tail: dict[int, float] = {}  # group index -> the Holm level at which it failed
    while len(fail_tail) < total:
        tail = alpha / (total - len(fail_tail))
        new = [i for i, g in enumerate(compared) if i not in fail_tail and g.bounds(alpha, tail)[1] < -g.margin]
        if not new:
            break
        fail_tail.update(dict.fromkeys(new, tail))
    final_tail = alpha / max(1, total - len(fail_tail))

    p_values = [mcnemar_exact(g.better, g.worse) for g in compared]
    p_adjusted = holm(p_values)
    out = []
    for i, g in enumerate(compared):
        tail_high = fail_tail.get(i, final_tail)
        low, high = g.bounds(alpha, tail_high)
        interval = Interval(value=g.value, low=low, high=high, level=1.0 - alpha - tail_high)
        outcome = non_inferiority(interval, g.margin)
        n_needed = None
        if outcome == INCONCLUSIVE:
            side = alpha if g.value > -g.margin else final_tail
            n_needed = samples_needed(g.c, g.b, g.margin, alpha=side)
        out.append(
            Comparison(
                variant=variant,
                group=g.name,
                n=g.n,
                candidate_accuracy=float(g.c.mean()),
                baseline_accuracy=float(g.b.mean()),
                difference=interval,
                better=g.better,
                worse=g.worse,
                p_value=p_values[i],
                p_adjusted=float(p_adjusted[i]),
                margin=g.margin,
                outcome=outcome,
                n_needed=n_needed,
            )
        )
    return out
