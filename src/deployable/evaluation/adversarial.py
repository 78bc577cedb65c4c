"""Adversarial robustness under a stated threat model, following Carlini et al., "On evaluating adversarial
robustness" (2019): name the threat model, use strong iterative attacks beside single-step ones, and check for the
symptoms of gradient masking instead of trusting a high robust accuracy.

- Images and tables with a differentiable PyTorch source: white-box, untargeted FGSM and PGD (L-inf and L2) from the
  Adversarial Robustness Toolbox, with the true labels. The source's adversarial inputs are then sent to every other
  variant (a transfer attack: exported and quantized files have no gradients of their own).
- An ONNX-only source: the score-based black-box Square attack (ART), on the source.
- Text: a black-box character-level attack on each variant (greedy: the words whose removal hurts the true class
  most get the character edit that hurts it most), under an edit budget of characters.

Sanity checks recorded with the results: accuracy must fall toward zero as the budget grows, and PGD must not be
weaker than FGSM; a failed check flags the result as suspicious.

Adversarial inputs are predicted through the PredictionStore under an id naming the attack, its budget, the sample
and the attacked model, so a rerun finds every prediction stored and runs no attack.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from deployable.config import EvaluateConfig
from deployable.core._imports import require
from deployable.core.records import AdversarialMetrics, AttackResult, SanityCheck
from deployable.data.dataset import Dataset, Split
from deployable.evaluation.batching import clean_reference, seeded_sample
from deployable.evaluation.store import PredictionStore
from deployable.models.base import Predictor

if TYPE_CHECKING:
    from deployable.evaluation.predict import Progress

CHANCE_MARGIN = 0.10  # "toward zero": at the largest budget, accuracy at most chance + 10 points


def attack_sample(dataset: Dataset, cfg: EvaluateConfig) -> tuple[Split, np.ndarray]:
    """The seeded sample of the test split that is attacked, and its row positions in the split."""
    return seeded_sample(dataset, cfg.test_split, cfg.adversarial.max_samples, cfg.adversarial.seed, salt=23)


def _torch_module(predictor: Predictor) -> Any:
    """The differentiable module of a PyTorch source taking one float tensor, or None."""
    return getattr(predictor, "module", None) if predictor.spec.get("type") == "pytorch" else None


def _absolute_budget(eps: float, norm: str, reference: np.ndarray, modality: str) -> Any:
    """The configured budget in input units: a share of the range (image) or of each feature's std (table)."""
    per_value = eps * (float(reference.max() - reference.min()) if modality == "image" else reference.std(axis=0))
    if norm == "inf":
        return per_value if np.ndim(per_value) == 0 else np.asarray(per_value, np.float32)
    dims = int(np.prod(reference.shape[1:]))
    return float(np.mean(per_value) * np.sqrt(dims))


def _white_box(
    module: Any, x: np.ndarray, y: np.ndarray, n_classes: int, reference: np.ndarray, modality: str, cfg: Any
) -> dict[tuple[str, str, float], np.ndarray]:
    """FGSM and PGD inputs for every norm and budget (ART on the torch module)."""
    torch = require("torch", feature="adversarial attacks")
    art = require("art.estimators.classification", feature="adversarial attacks")
    evasion = require("art.attacks.evasion", feature="adversarial attacks")
    clip = (float(reference.min()), float(reference.max())) if modality == "image" else None
    classifier = art.PyTorchClassifier(
        model=module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=n_classes,
        clip_values=clip,
        device_type="cpu",
    )
    out: dict[tuple[str, str, float], np.ndarray] = {}
    for norm in cfg.norms:
        order = np.inf if norm == "inf" else 2
        for eps in cfg.epsilons:
            budget = _absolute_budget(eps, norm, reference, modality)
            fgsm = evasion.FastGradientMethod(classifier, norm=order, eps=budget, eps_step=budget, batch_size=64)
            out[("fgsm", norm, eps)] = fgsm.generate(x, y=y).astype(np.float32)
            step = budget * 2.5 / cfg.pgd_steps
            pgd = evasion.ProjectedGradientDescent(
                classifier,
                norm=order,
                eps=budget,
                eps_step=step,
                max_iter=cfg.pgd_steps,
                batch_size=64,
                verbose=False,
                random_eps=False,
                num_random_init=0,
            )
            out[("pgd", norm, eps)] = pgd.generate(x, y=y).astype(np.float32)
    return out


def simba(
    predictor: Predictor,
    x: np.ndarray,
    y: np.ndarray,
    budget: Any,
    norm: str,
    *,
    iterations: int = 200,
    rng: np.random.Generator,
) -> np.ndarray:
    """Score-based random coordinate search (SimBA, Guo et al., 2019) for inputs that are not images.

    Each iteration tries one random coordinate per sample in both directions and keeps the step when the true
    class's probability drops; the result is projected back into the L-inf box or the L2 ball of ``budget``.
    """
    from deployable.evaluation.metrics import softmax

    def true_prob(z: np.ndarray) -> np.ndarray:
        return softmax(predictor.forward(z.astype(np.float32)).logits)[np.arange(len(z)), y]

    flat = x.reshape(len(x), -1).astype(np.float64)
    d = flat.shape[1]
    box = np.broadcast_to(np.asarray(budget, dtype=np.float64).reshape(-1), (d,)) if norm == "inf" else None
    step = box if box is not None else np.full(d, float(budget) / np.sqrt(min(d, 8)))
    adv = flat.copy()
    best = true_prob(adv.reshape(x.shape))
    rows = np.arange(len(x))
    for _ in range(iterations):
        coord = rng.integers(0, d, size=len(x))
        for sign in (1.0, -1.0):
            trial = adv.copy()
            trial[rows, coord] += sign * step[coord]
            delta = trial - flat
            if box is not None:
                delta = np.clip(delta, -box, box)
            else:
                norms = np.linalg.norm(delta, axis=1, keepdims=True)
                delta *= np.minimum(1.0, float(budget) / np.maximum(norms, 1e-12))
            trial = flat + delta
            p = true_prob(trial.reshape(x.shape))
            better = p < best
            adv[better], best[better] = trial[better], p[better]
    return adv.reshape(x.shape).astype(np.float32)


def _black_box(
    predictor: Predictor, x: np.ndarray, y: np.ndarray, n_classes: int, reference: np.ndarray, modality: str, cfg: Any
) -> dict[tuple[str, str, float], np.ndarray]:
    """Score-based attacks on a model seen only through its probabilities: ART's Square attack for images,
    :func:`simba` for other inputs (ART's Square attack takes images only)."""
    if modality != "image":
        rng = np.random.default_rng([cfg.seed, 37])
        return {
            ("simba", norm, eps): simba(
                predictor, x, y, _absolute_budget(eps, norm, reference, modality), norm, iterations=200, rng=rng
            )
            for norm in cfg.norms
            for eps in cfg.epsilons
        }
    art = require("art.estimators.classification", feature="adversarial attacks")
    evasion = require("art.attacks.evasion", feature="adversarial attacks")
    from deployable.evaluation.metrics import softmax

    clip = (float(reference.min()), float(reference.max())) if modality == "image" else None
    classifier = art.BlackBoxClassifierNeuralNetwork(
        lambda batch: softmax(predictor.forward(batch.astype(np.float32)).logits),
        input_shape=tuple(x.shape[1:]),
        nb_classes=n_classes,
        clip_values=clip,
    )
    out: dict[tuple[str, str, float], np.ndarray] = {}
    for norm in cfg.norms:
        order = np.inf if norm == "inf" else 2
        for eps in cfg.epsilons:
            budget = float(np.mean(_absolute_budget(eps, norm, reference, modality)))
            attack = evasion.SquareAttack(
                classifier, norm=order, eps=budget, max_iter=200, nb_restarts=1, verbose=False
            )
            out[("square", norm, eps)] = attack.generate(x, y=y).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Text: greedy character-level attack under an edit budget
# ---------------------------------------------------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _char_edits(word: str, rng: np.random.Generator) -> list[str]:
    """A handful of one-character edits of a word: swap, drop, substitute, insert (the DeepWordBug family)."""
    if len(word) < 2:
        return [word + _LETTERS[rng.integers(26)]]
    out = set()
    for _ in range(6):
        i = int(rng.integers(0, len(word) - 1))
        kind = int(rng.integers(4))
        if kind == 0:
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
        elif kind == 1:
            out.add(word[:i] + word[i + 1 :])
        elif kind == 2:
            out.add(word[:i] + _LETTERS[rng.integers(26)] + word[i + 1 :])
        else:
            out.add(word[:i] + _LETTERS[rng.integers(26)] + word[i:])
    out.discard(word)
    return sorted(out)


def _true_prob(predictor: Predictor, texts: list[str], label: int) -> np.ndarray:
    from deployable.evaluation.metrics import softmax

    out = []
    for i in range(0, len(texts), 64):
        out.append(softmax(predictor.forward(texts[i : i + 64]).logits)[:, label])
    return np.concatenate(out)


def text_attack(predictor: Predictor, text: str, label: int, budget: int, rng: np.random.Generator) -> list[str]:
    """The attacked text after each of ``budget`` character edits (stopping early once the prediction is wrong).

    Words are ranked once by how much deleting each lowers the true class's probability (DeepWordBug's
    leave-one-out score); the k-th edit goes to the k-th word of that ranking, choosing among a few one-character
    edits the one that lowers the true class's probability most.
    """
    words = text.split()
    if not words:
        return []
    leave_out = [" ".join([*words[:i], *words[i + 1 :]]) or words[i] for i in range(len(words))]
    ranking = np.argsort(_true_prob(predictor, leave_out, label))  # lowest probability without it: most important
    states: list[str] = []
    current = words[:]
    for i in ranking[:budget]:
        edits = _char_edits(current[i], rng)
        candidates = [" ".join([*current[:i], edit, *current[i + 1 :]]) for edit in edits]
        probs = _true_prob(predictor, candidates, label)
        current[i] = edits[int(np.argmin(probs))]
        states.append(" ".join(current))
        if float(probs.min()) < 0.5 and int(predictor.forward([states[-1]]).logits.argmax(1)[0]) != label:
            break
    return states


def _text_attacks(predictor: Predictor, sample: Split, budgets: list[int], seed: int) -> dict[int, list[str]]:
    """Attacked texts per budget: text i under budget b is its state after min(b, edits made) edits."""
    rng = np.random.default_rng([seed, 31])
    top = max(budgets)
    runs = [text_attack(predictor, t, int(y), top, rng) for t, y in zip(sample.inputs, sample.labels, strict=True)]
    return {b: [(s[min(b, len(s)) - 1] if s else t) for s, t in zip(runs, sample.inputs, strict=True)] for b in budgets}


# ---------------------------------------------------------------------------------------------------------------------
# The metrics of one variant
# ---------------------------------------------------------------------------------------------------------------------


def _sanity(results: list[AttackResult], n_classes: int, n: int) -> tuple[SanityCheck, ...]:
    checks = []
    slack = 1.0 / n  # one sample of noise
    groups: dict[tuple[str, str], list[AttackResult]] = {}
    for r in results:
        groups.setdefault((r.attack, r.norm), []).append(r)
    chance = 1.0 / n_classes
    for (attack, norm), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.epsilon)
        acc = [r.accuracy for r in rs]
        monotone = all(b <= a + slack for a, b in itertools.pairwise(acc))
        label = f"{attack} {'L' + norm if norm != 'edits' else 'edits'}"
        checks.append(
            SanityCheck(
                f"{label}: accuracy falls as the budget grows",
                monotone,
                "accuracy by budget: " + ", ".join(f"{r.epsilon:g}: {r.accuracy:.0%}" for r in rs),
            )
        )
        if attack != "char-edit":
            toward_zero = acc[-1] <= chance + CHANCE_MARGIN
            checks.append(
                SanityCheck(
                    f"{label}: accuracy near zero at the largest budget",
                    toward_zero,
                    f"{acc[-1]:.0%} at {rs[-1].epsilon:g} (chance {chance:.0%}); a larger budget that still leaves "
                    "accuracy high suggests gradient masking",
                )
            )
    for (attack, norm), rs in groups.items():
        if attack != "pgd" or ("fgsm", norm) not in groups:
            continue
        fgsm = {r.epsilon: r.accuracy for r in groups[("fgsm", norm)]}
        worse = [r.epsilon for r in rs if r.accuracy > fgsm.get(r.epsilon, 1.0) + slack]
        checks.append(
            SanityCheck(
                f"PGD L{norm} not weaker than FGSM",
                not worse,
                "PGD at least as strong at every budget"
                if not worse
                else f"PGD weaker than FGSM at {', '.join(f'{e:g}' for e in worse)}: the loss surface may be masked",
            )
        )
    return tuple(checks)


def adversarial_metrics(
    predictor: Predictor,
    dataset: Dataset,
    cfg: EvaluateConfig,
    store: PredictionStore,
    clean_logits: np.ndarray,
    *,
    attack_source: tuple[str, Predictor] | None = None,
    progress: Progress | None = None,
    label: str = "",
) -> AdversarialMetrics | None:
    """Attack results of one variant (None when nothing applies, e.g. a tabular ONNX variant without a source)."""
    from deployable.evaluation.predict import predict_perturbed

    adv = cfg.adversarial
    sample, index = attack_sample(dataset, cfg)
    y = sample.labels
    clean_ok = np.asarray(clean_logits)[index].argmax(1) == y
    memo: dict[str, Any] = dataset.__dict__.setdefault("_adversarial_inputs", {})
    results: list[AttackResult] = []
    task = progress.task(f"attacks {label}", 1) if progress is not None else None

    def record(attack: str, norm: str, eps: float, pid: dict[str, Any], make: Any, transferred: bool) -> None:
        logits = predict_perturbed(predictor, sample, pid, make, store, batch_size=cfg.batch_size).logits
        ok = logits.argmax(1) == y
        results.append(
            AttackResult(
                attack=attack,
                norm=norm,
                epsilon=float(eps),
                accuracy=float(ok.mean()),
                success_rate=float((clean_ok & ~ok).mean()),
                transferred=transferred,
            )
        )

    if dataset.modality == "text":
        threat = (
            f"black-box, untargeted, score access: a greedy character-level attack on this variant's probabilities, "
            f"at most {max(adv.edit_budgets)} edited characters per text (swap, drop, substitute, insert), "
            f"{len(sample)} test texts"
        )
        key = f"text:{predictor.fingerprint}:{sample.fingerprint}:{adv.seed}"
        for b in adv.edit_budgets:
            pid = {"kind": "text-attack", "budget": b, "seed": adv.seed, "attacked": predictor.fingerprint}

            def make(b: int = b, key: str = key) -> Any:
                if key not in memo:
                    memo[key] = _text_attacks(predictor, sample, adv.edit_budgets, adv.seed)
                return memo[key][b]

            record("char-edit", "edits", b, pid, make, transferred=False)
        source_name = None
    else:
        x = np.asarray(sample.inputs, dtype=np.float32)
        reference = clean_reference(dataset, cfg.test_split)
        src_name, src = attack_source if attack_source is not None else (label, predictor)
        module = _torch_module(src)
        kind = "white-box" if module is not None else "black-box"
        key = f"{kind}:{src.fingerprint}:{sample.fingerprint}:{adv.seed}"

        def generate() -> dict[tuple[str, str, float], np.ndarray]:
            if key not in memo:
                if module is not None:
                    memo[key] = _white_box(module, x, y, dataset.n_classes, reference, dataset.modality, adv)
                else:
                    memo[key] = _black_box(src, x, y, dataset.n_classes, reference, dataset.modality, adv)
            return memo[key]

        attacks = ("fgsm", "pgd") if module is not None else ("square",) if dataset.modality == "image" else ("simba",)
        for attack in attacks:
            for norm in adv.norms:
                for eps in adv.epsilons:
                    pid = {
                        "kind": "adversarial",
                        "attack": attack,
                        "norm": norm,
                        "epsilon": eps,
                        "steps": adv.pgd_steps,
                        "seed": adv.seed,
                        "attacked": src.fingerprint,
                    }
                    record(
                        attack,
                        norm,
                        eps,
                        pid,
                        lambda a=attack, n=norm, e=eps: generate()[(a, n, e)],
                        transferred=src is not predictor,
                    )
        unit = "share of the input range" if dataset.modality == "image" else "feature standard deviations"
        threat = (
            f"{kind}, untargeted, true labels; L-inf / L2 budgets in {unit} (L2 scaled by sqrt of the input size); "
            + (
                f"FGSM and PGD ({adv.pgd_steps} steps) on the PyTorch source"
                if module is not None
                else "Square attack (score-based, 200 iterations) on the ONNX source"
                if dataset.modality == "image"
                else "SimBA random coordinate search (score-based, 200 iterations) on the ONNX source"
            )
            + (f", transferred to this variant from '{src_name}'" if src is not predictor else "")
            + f"; {len(sample)} test samples"
        )
        source_name = src_name if src is not predictor else None
    if progress is not None:
        progress.advance(task)
        progress.done(task)
    checked = [r for r in results if not r.transferred]
    return AdversarialMetrics(
        threat_model=threat,
        n=len(sample),
        clean_accuracy=float(clean_ok.mean()),
        results=tuple(results),
        sanity=_sanity(checked, dataset.n_classes, len(sample)) if checked else (),
        source=source_name,
    )
