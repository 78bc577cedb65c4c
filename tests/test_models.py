"""Model sources: each Predictor gives the logits its framework gives, and features where exposed."""

from __future__ import annotations

import shutil
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_reference
from deployable.config import load_config
from deployable.core.errors import DeployableError, ModelError
from deployable.core.plugins import list_plugins
from deployable.models import load_predictor, source_variant
from deployable.models.sources import model_spec
from deployable.models.text import tokenize

TEXTS = [
    "hi",
    "I was charged twice for my order last week and nobody answers my emails",
    "where is my parcel?",
]


def _tiny_inputs(n: int = 5) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32)


def _export(
    module: torch.nn.Module, path: Path, example: tuple, names: list[str], outputs: list[str], axes: dict
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            dynamo=False,
            opset_version=17,
        )


def test_every_model_source_is_registered() -> None:
    assert list_plugins("model") == ["onnx", "pytorch", "sentence-transformers", "torchscript", "transformers"]


def _saved_model_outputs(project: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits and penultimate features of the weights saved in the fixture, from a module built and loaded here."""
    from safetensors.torch import load_file

    saved = tiny_reference(load_file(str(project.parent / "tiny.safetensors")))
    fresh = tiny_reference()
    with torch.no_grad():
        t = torch.from_numpy(x)
        ref, feats = saved(t).numpy(), saved.body(t).numpy()
        # the test has power only if the factory's own weights give other logits than the saved ones
        assert np.abs(fresh(t).numpy() - ref).max() > 0.1
    return ref, feats


def _with_weights(project: Path, weights: str) -> dict:
    """The project's model spec with another weights file from its folder."""
    data = yaml.safe_load(project.read_text())
    data["model"]["weights"] = weights
    return model_spec(load_config(data, base_dir=project.parent))


def test_pytorch_safetensors_logits_and_features(tabular_project: Path) -> None:
    predictor = load_predictor(model_spec(load_config(tabular_project)))
    x = _tiny_inputs()
    out = predictor.forward(x)
    ref, feats = _saved_model_outputs(tabular_project, x)
    np.testing.assert_allclose(out.logits, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.features, feats, rtol=1e-6, atol=1e-6)
    assert out.logits.dtype == np.float32


@pytest.mark.parametrize("layout", ["state_dict", "lightning"])
def test_pytorch_pt_state_dict_logits(tabular_project: Path, layout: str) -> None:
    """A torch.save'd state dict (plain, or under a Lightning checkpoint's 'state_dict') loads the saved weights."""
    from safetensors.torch import load_file

    from deployable.audit.guard import scan_model

    state = OrderedDict(load_file(str(tabular_project.parent / "tiny.safetensors")))
    torch.save(state if layout == "state_dict" else {"state_dict": state, "epoch": 3}, tabular_project.parent / "t.pt")
    spec = _with_weights(tabular_project, "t.pt")
    assert not scan_model(spec)[3], "a plain state dict passes the scan"
    x = _tiny_inputs()
    out = load_predictor(spec).forward(x)
    ref, feats = _saved_model_outputs(tabular_project, x)
    np.testing.assert_allclose(out.logits, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.features, feats, rtol=1e-6, atol=1e-6)


def test_variant_record_and_fingerprint(tabular_project: Path, tmp_path: Path) -> None:
    project = load_config(tabular_project)
    predictor = load_predictor(model_spec(project))
    variant = source_variant(predictor)
    assert variant.size_bytes > 0 and len(variant.sha256) == 64 and variant.parent is None
    assert type(variant).from_json(variant.to_json()) == variant
    # the same bytes in another folder are the same model
    moved = tmp_path / "moved"
    shutil.copytree(tabular_project.parent, moved)
    again = load_predictor(model_spec(load_config(moved / "deployable.yaml")))
    assert again.fingerprint == predictor.fingerprint
    # other weights are another model
    sd = again.module.state_dict()
    sd["head.bias"] = sd["head.bias"] + 1
    from safetensors.torch import save_file

    save_file(sd, str(moved / "tiny.safetensors"))
    changed = load_predictor(model_spec(load_config(moved / "deployable.yaml")))
    assert changed.fingerprint != predictor.fingerprint


def test_pytorch_weights_that_do_not_fit(tabular_project: Path) -> None:
    from safetensors.torch import save_file

    save_file({"head.weight": torch.zeros(2, 2)}, str(tabular_project.parent / "tiny.safetensors"))
    with pytest.raises(ModelError, match=r"weights do not fit 'tinymodel:build'"):
        load_predictor(model_spec(load_config(tabular_project)))


def test_torchscript_and_onnx_match_eager(tabular_project: Path, tmp_path: Path) -> None:
    predictor = load_predictor(model_spec(load_config(tabular_project)))
    x = _tiny_inputs(7)
    ref = predictor.forward(x).logits
    scripted = torch.jit.trace(predictor.module, torch.from_numpy(x))
    scripted.save(str(tmp_path / "tiny.pt"))
    ts = load_predictor({"type": "torchscript", "path": str(tmp_path / "tiny.pt")})
    np.testing.assert_allclose(ts.forward(x).logits, ref, rtol=1e-5, atol=1e-6)

    _export(predictor.module, tmp_path / "tiny.onnx", (torch.from_numpy(x),), ["x"], ["logits"], {"x": {0: "batch"}})
    ox = load_predictor({"type": "onnx", "path": str(tmp_path / "tiny.onnx"), "threads": 1})
    np.testing.assert_allclose(ox.forward(x).logits, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ox.forward(x[:1]).logits, ref[:1], rtol=1e-5, atol=1e-5)  # dynamic batch
    assert ox.session.get_session_options().intra_op_num_threads == 1
    ox.set_threads(2)
    assert ox.session.get_session_options().intra_op_num_threads == 2


def test_unreadable_onnx_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"bad.onnx: onnxruntime cannot load this model"):
        load_predictor({"type": "onnx", "path": str(tmp_path / "bad.onnx")})


def test_unknown_model_type_lists_valid() -> None:
    with pytest.raises(DeployableError, match=r"unknown model 'onxx' \(did you mean 'onnx'\?\)"):
        load_predictor({"type": "onxx"})


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A randomly initialised 2-layer BERT classifier with the MiniLM tokenizer, saved as a transformers folder."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "billing", 1: "refund", 2: "shipping"},
        label2id={"billing": 0, "refund": 1, "shipping": 2},
    )
    BertForSequenceClassification(config).eval().save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(minilm_dir)).save_pretrained(str(folder))
    return folder


def test_transformers_folder(tiny_bert: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    predictor = load_predictor({"type": "transformers", "path": str(tiny_bert), "max_length": 64})
    assert predictor.label_names == ("billing", "refund", "shipping")
    out = predictor.forward(TEXTS)
    ref_model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    with torch.no_grad():
        # each text alone, unpadded: dynamic padding with an attention mask must not change the logits
        ref = np.concatenate([ref_model(**tok([t], return_tensors="pt")).logits.numpy() for t in TEXTS])
    np.testing.assert_allclose(out.logits, ref, atol=1e-5)
    assert out.features.shape == (3, 32)


def test_dynamic_padding_pads_to_longest_in_batch(minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    enc = tokenize(tok, ["hi", "where is my parcel"], max_length=128)
    longest = max(len(tok(t)["input_ids"]) for t in ["hi", "where is my parcel"])
    assert enc["input_ids"].shape == (2, longest) and longest < 128
    assert tokenize(tok, ["word " * 500], max_length=128)["input_ids"].shape == (1, 128)


def test_onnx_text_graph_with_tokenizer(tiny_bert: Path, tmp_path: Path) -> None:
    predictor = load_predictor({"type": "transformers", "path": str(tiny_bert), "max_length": 64})

    class Wrapped(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    from transformers import AutoModelForSequenceClassification

    eager = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), attn_implementation="eager").eval()
    enc = tokenize(predictor.tokenizer, TEXTS, 64, framework="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    _export(Wrapped(eager), tmp_path / "bert.onnx", tuple(enc[n] for n in names), names, ["logits"], axes)
    ox = load_predictor(
        {"type": "onnx", "path": str(tmp_path / "bert.onnx"), "tokenizer": str(tiny_bert), "max_length": 64}
    )
    np.testing.assert_allclose(ox.forward(TEXTS).logits, predictor.forward(TEXTS).logits, atol=1e-4)
    alone = np.concatenate([ox.forward([t]).logits for t in MIXED])
    calls = _count_calls(ox, "_run")
    np.testing.assert_allclose(ox.forward(MIXED).logits, alone, atol=1e-4)
    assert len(calls) >= 2


@pytest.mark.slow
def test_sentence_encoder_matches_sentence_transformers(minilm_dir: Path, tmp_path: Path) -> None:
    """Our transformers-only encoder gives the embeddings sentence-transformers gives for the same folder."""
    import json

    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer

    rng = np.random.default_rng(0)
    head = {"weight": rng.normal(size=(3, 384)).astype(np.float32), "bias": np.zeros(3, np.float32)}
    save_file(head, str(tmp_path / "head.safetensors"), metadata={"labels": json.dumps(["a", "b", "c"])})
    predictor = load_predictor(
        {
            "type": "sentence-transformers",
            "encoder": str(minilm_dir),
            "head": str(tmp_path / "head.safetensors"),
            "max_length": 128,
        }
    )
    out = predictor.forward(TEXTS)
    ref = SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(out.features, ref, atol=1e-5)
    np.testing.assert_allclose(out.logits, ref @ head["weight"].T, atol=1e-4)
    assert predictor.label_names == ("a", "b", "c")
    # all-MiniLM-L6-v2 is a real pretrained model: paraphrases are closer than unrelated texts
    e = predictor.encoder.embed_all(["I want my money back", "please refund me", "the app crashes on start"])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1


def test_head_of_wrong_width_is_refused(minilm_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(
        {"weight": np.zeros((2, 10), np.float32), "bias": np.zeros(2, np.float32)}, str(tmp_path / "head.safetensors")
    )
    with pytest.raises(ModelError, match=r"the head expects 10 features but the encoder gives 384"):
        load_predictor(
            {"type": "sentence-transformers", "encoder": str(minilm_dir), "head": str(tmp_path / "head.safetensors")}
        )


def _brute_force_cost(lengths: list[int], overhead: int) -> int:
    """The cheapest cost over every way of cutting the sorted lengths into contiguous runs."""
    s = sorted(lengths)
    n = len(s)
    best = None
    for mask in range(2 ** (n - 1)):
        cost, start = 0, 0
        for i in range(n):
            if i == n - 1 or mask >> i & 1:
                cost += overhead + (i + 1 - start) * s[i]
                start = i + 1
        best = cost if best is None else min(best, cost)
    return best


def test_length_groups_are_the_cheapest_cut() -> None:
    from deployable.models.text import length_groups

    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 9))
        lengths = rng.integers(1, 120, size=n).tolist()
        overhead = int(rng.choice([0, 8, 32, 500]))
        groups = length_groups(lengths, overhead)
        assert sorted(np.concatenate(groups).tolist()) == list(range(n))  # every text once
        cost = sum(overhead + len(g) * max(lengths[i] for i in g) for g in groups)
        assert cost == _brute_force_cost(lengths, overhead), (lengths, overhead)
    assert len(length_groups([5] * 10 + [120], 32)) == 2  # ten short texts stop paying for the long one
    assert len(length_groups([5, 6, 7], 10_000)) == 1  # calls dearer than padding: one call


def _count_calls(predictor, attr: str) -> list[int]:
    calls: list[int] = []
    run = getattr(predictor, attr)

    def counted(enc):
        calls.append(int(enc["input_ids"].shape[1]))
        return run(enc)

    setattr(predictor, attr, counted)
    return calls


MIXED = ["hi", *TEXTS[1:], "ok thanks", "yes", "the tracking page has said 'label created' for nine days " * 3]


def test_mixed_lengths_run_in_groups_with_unchanged_logits(tiny_bert: Path, tmp_path: Path) -> None:
    predictor = load_predictor({"type": "transformers", "path": str(tiny_bert), "max_length": 64})
    alone = np.concatenate([predictor.forward([t]).logits for t in MIXED])
    calls = _count_calls(predictor, "_run")
    out = predictor.forward(MIXED)
    assert len(calls) >= 2 and max(calls) > min(calls)  # short texts ran without the long one's padding
    np.testing.assert_allclose(out.logits, alone, atol=1e-5)
    assert out.features.shape == (len(MIXED), 32)


def test_left_padding_is_never_cut(tiny_bert: Path) -> None:
    predictor = load_predictor({"type": "transformers", "path": str(tiny_bert), "max_length": 64})
    predictor.tokenizer.padding_side = "left"
    whole = predictor._run(tokenize(predictor.tokenizer, MIXED, 64, framework="pt")).logits
    calls = _count_calls(predictor, "_run")
    np.testing.assert_allclose(predictor.forward(MIXED).logits, whole, atol=1e-6)
    assert len(calls) == 1  # cutting columns of a left-padded batch would cut text, so it runs whole
