"""A sentence-transformers BERT model (the bundled all-MiniLM-L6-v2) run with numpy alone, for short texts.

Importing torch and sentence-transformers takes seconds; a question is a few dozen tokens, which numpy
encodes in milliseconds. So search embeds its query here (`pllm ask`, `pllm memory search`), with the same
weights (model.safetensors, memory-mapped), the same tokenizer (tokenizer.json, through `tokenizers`), and the
same modules (BERT, mean pooling, normalisation); ingest keeps sentence-transformers for its batches. The
vectors agree with sentence-transformers' to about 1e-6 (tests/test_bert_numpy.py).

Only what a BERT sentence-transformer with mean pooling needs is implemented; `load` refuses anything else
(the caller then uses sentence-transformers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SUPPORTED_MODULES = (
    ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"],
    [
        "sentence_transformers.models.Transformer",
        "sentence_transformers.models.Pooling",
        "sentence_transformers.models.Normalize",
    ],
)


@dataclass
class BertEncoder:
    weights: dict[str, Any]
    tokenizer: Any
    heads: int
    layers: int
    eps: float
    normalize: bool

    def embed(self, texts: Sequence[str]) -> list[Any]:
        """One float32 row per text, as sentence-transformers gives them."""
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> Any:
        import numpy as np

        w = self.weights
        encoding = self.tokenizer.encode(text)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w, "embeddings.LayerNorm", self.eps)
        hidden = x.shape[1]
        size = hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (_linear(x, w, f"{p}attention.self.{name}") for name in ("query", "key", "value"))
            q, k, v = (m.reshape(n, self.heads, size).transpose(1, 0, 2) for m in (q, k, v))
            scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(size))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = _layer_norm(
                _linear(attended, w, f"{p}attention.output.dense") + x, w, f"{p}attention.output.LayerNorm", self.eps
            )
            inner = _gelu(_linear(x, w, f"{p}intermediate.dense"))
            x = _layer_norm(_linear(inner, w, f"{p}output.dense") + x, w, f"{p}output.LayerNorm", self.eps)
        pooled = x.mean(axis=0)
        if self.normalize:
            pooled = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return pooled.astype(np.float32)


def _linear(x: Any, w: dict[str, Any], name: str) -> Any:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def _layer_norm(x: Any, w: dict[str, Any], name: str, eps: float) -> Any:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]


def _gelu(x: Any) -> Any:
    """BERT's exact GELU, x * Phi(x); erf by Abramowitz and Stegun 7.1.26 (error below 1.5e-7, float32's)."""
    import numpy as np

    z = np.abs(x) / np.float32(1.4142135623730951)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return (x * 0.5 * (1.0 + erf)).astype(np.float32)


def load(path: Path) -> BertEncoder | None:
    """The model at `path` if it is a BERT sentence-transformer this module can run, else None."""
    try:
        modules = [m["type"] for m in json.loads((path / "modules.json").read_text(encoding="utf-8"))]
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        settings = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        pooling.get(key)
        for key in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    )
    plain_bert = config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
    plain_bert = plain_bert and config.get("position_embedding_type", "absolute") == "absolute"
    if modules not in _SUPPORTED_MODULES or not mean_only or not plain_bert:
        return None
    if not (path / "model.safetensors").exists() or not (path / "tokenizer.json").exists():
        return None
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        limit = min(int(settings.get("max_seq_length", 512)), int(config["max_position_embeddings"]))
        tokenizer.enable_truncation(max_length=limit)
        tokenizer.no_padding()
        loaded = load_file(str(path / "model.safetensors"))
    except Exception:  # a damaged file: sentence-transformers will say what is wrong with it
        return None
    weights = {key.removeprefix("bert."): value for key, value in loaded.items()}
    return BertEncoder(
        weights=weights,
        tokenizer=tokenizer,
        heads=int(config["num_attention_heads"]),
        layers=int(config["num_hidden_layers"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
        normalize=len(modules) == 3,
    )
