"""Each conversation of a LoCoMo-format file in its own temporary memory, ingested through the same importer
and pipeline users get (its turns written as pllm's JSONL chat format, then `ingest_paths`)."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pllm_cli.embedding import Embedder
from pllm_cli.errors import InputError
from pllm_cli.evaluation.locomo import load_locomo, sample_to_chat_records, write_chat_jsonl
from pllm_cli.ingest.pipeline import IngestOptions, ingest_paths
from pllm_cli.memory.remote import MemoryServer
from pllm_cli.memory.store import ChromaStore


def conversation_memories(
    path: Path,
    embedder: Embedder,
    *,
    me: Callable[[dict[str, Any]], tuple[str, ...]] = lambda sample: (),
    limit: int | None = None,
    samples: Sequence[dict[str, Any]] | None = None,
    server: MemoryServer | None = None,
) -> Iterator[tuple[dict[str, Any], list[dict[str, str]], ChromaStore]]:
    """(sample, its chat records, a memory holding them) for each conversation; the memory is deleted when
    the caller moves on. `me` names the user of each sample (none by default). `samples`: these, already
    loaded from `path`, instead of the file's first `limit`. With `server`, each memory is in collections of its
    own on that server, deleted afterwards too."""
    try:
        samples = list(samples) if samples is not None else load_locomo(path)[:limit]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not LoCoMo-format data ({exc})", hint="see ../shared/eval/README.md") from None
    for sample in samples:
        records = sample_to_chat_records(sample)
        with tempfile.TemporaryDirectory(prefix="pllm-eval-") as tmp:
            data = Path(tmp) / f"{sample['sample_id']}.jsonl"
            write_chat_jsonl(records, data)
            own = None
            if server is not None:
                name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(sample["sample_id"]))
                own = replace(server, persona=f"eval.{name}.{uuid.uuid4().hex[:8]}")
            store = ChromaStore(Path(tmp) / "memory", embedding_model=embedder.name, server=own)
            try:
                report = ingest_paths([data], store, embedder, options=IngestOptions(me=me(sample)))
                if report.failed:
                    raise InputError(f"{path}: conversation {sample['sample_id']}: {report.failed[0].reason}")
                yield sample, records, store
            finally:
                if store.remote is not None:
                    store.remote.drop()
                store.close()
