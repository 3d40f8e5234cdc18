"""The bundled embedding model run with numpy for queries: the same vectors as sentence-transformers, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pllm_cli import bert_numpy
from pllm_cli.embedding import FEW_TEXTS, SentenceTransformerEmbedder, bundled_embedding_path

TEXTS = [
    "When did Caroline go to the LGBTQ support group?",
    "Who is my manager, and when is my project deadline?",
    "x",
    "héllo wörld café, 東京 🙂 " * 60,  # past the 256-token limit: truncated the same way
]


@pytest.mark.e2e
def test_numpy_vectors_are_sentence_transformers_vectors() -> None:
    light = bert_numpy.load(bundled_embedding_path())
    assert light is not None
    reference = SentenceTransformerEmbedder().model.encode(TEXTS, normalize_embeddings=True)
    for mine, theirs in zip(light.embed(TEXTS), reference, strict=True):
        assert mine.dtype == np.float32 and mine.shape == theirs.shape
        assert float(np.max(np.abs(mine - theirs))) < 1e-5


@pytest.mark.e2e
def test_a_question_is_embedded_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from pllm_cli.embedding import SentenceTransformerEmbedder\n"
        "e = SentenceTransformerEmbedder()\n"
        "[v] = e.embed(['Who is my manager?'])\n"
        "assert len(v) == 384, len(v)\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.e2e
def test_many_texts_or_a_loaded_model_use_sentence_transformers() -> None:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["a"] * (FEW_TEXTS + 1))
    assert "model" in embedder.__dict__  # a batch loaded sentence-transformers
    assert "light" not in embedder.__dict__


def test_a_model_it_cannot_run_is_left_to_sentence_transformers(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(bundled_embedding_path(), model, ignore=shutil.ignore_patterns("model.safetensors"))
    assert bert_numpy.load(model) is None  # no weights
    (model / "model.safetensors").write_bytes(b"not safetensors")
    assert bert_numpy.load(model) is None  # damaged weights
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert bert_numpy.load(model) is None  # CLS pooling
    assert bert_numpy.load(tmp_path / "missing") is None


@pytest.mark.e2e
def test_an_ingest_embeds_with_sentence_transformers_even_a_small_file(tmp_path: Path) -> None:
    from pllm_cli.ingest.pipeline import ingest_paths
    from pllm_cli.memory.store import ChromaStore

    embedder = SentenceTransformerEmbedder()
    note = tmp_path / "note.md"
    note.write_text("# A\n\nA short note.\n", encoding="utf-8")
    store = ChromaStore(tmp_path / "memory", embedding_model=embedder.name)
    try:
        assert not ingest_paths([note], store, embedder).failed
    finally:
        store.close()
    assert "model" in embedder.__dict__ and "light" not in embedder.__dict__  # bulk work: torch, batched
