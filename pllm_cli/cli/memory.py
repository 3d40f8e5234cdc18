"""pllm memory: search, stats, sources, sync, forget."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from pllm_cli.cli.console import err, out, print_json, stdin_lines
from pllm_cli.cli.locks import lock_wait, wait_option, waiting_notice
from pllm_cli.context import AppContext
from pllm_cli.errors import BusyError, InputError, NotFoundError, PllmError, UsageError
from pllm_cli.file_names import shown, source_key, source_path
from pllm_cli.ingest.pipeline import ForgetReport, IngestOptions, forget_memory
from pllm_cli.memory.forgetting import ForgetRule
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.memory.lookup import look_up, look_up_many
from pllm_cli.memory.records import PARTIAL, SourceRecord
from pllm_cli.memory.store import SEARCH_MODES
from pllm_cli.profile.facts import Fact
from pllm_cli.profile.manage import drop_facts_of_forgotten_memory, profile_lock
from pllm_cli.profile.state import ProfileFiles
from pllm_cli.server.client import find_server
from pllm_cli.server.remote import remote_search
from pllm_cli.user_text import require_text

app = typer.Typer(help="Search and manage what pllm remembers.", no_args_is_help=True)
PROFILE_WAIT_SECONDS = 5.0  # how long `memory forget` waits for a refresh before leaving the facts to the next one


@app.command("search")
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="What to look for; '-' reads one query per line from stdin."),
    k: int = typer.Option(8, "--k", "-k", min=1, max=100, help="How many hits."),
    mode: str = typer.Option("hybrid", "--mode", help="dense, lexical or hybrid (both, fused)."),
    tokens: int | None = typer.Option(
        None, "--tokens", min=1, help="Instead of k hits: the best passages within this many tokens, as ask packs them."
    ),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout (JSON Lines with '-')."),
) -> None:
    """Find the memories closest to QUERY, best first.

    A question naming a time ("in May 2023", "last week") favours memories of that period. With --tokens,
    hits become passages (a chat hit with its turn before and after) that fit the budget, as `pllm ask` uses them.
    """
    app_ctx: AppContext = ctx.obj
    if mode not in SEARCH_MODES:
        raise UsageError(f"unknown search mode {shown(mode)!r}", hint="use one of: " + ", ".join(SEARCH_MODES))
    require_text(query, "the query")
    many = query == "-"
    for found in _results(app_ctx, query, k=k, mode=mode, tokens=tokens):
        if many and not json_output:
            out().print(f"## {found['query']}", markup=False)
        _show(found, json_output)


def _results(app_ctx: AppContext, query: str, *, k: int, mode: str, tokens: int | None) -> Iterator[dict[str, Any]]:
    """The search results, from a running `pllm serve` if there is one, else from this process."""
    lines: Iterable[str] | None = stdin_lines() if query == "-" else None
    server = find_server(app_ctx)
    if server is not None:
        if lines is not None:
            lines = list(lines)
        found = remote_search(server, app_ctx, query if lines is None else lines, k=k, mode=mode, tokens=tokens)
        if found is not None:
            return found
    retriever = app_ctx.retriever
    retriever.mode = mode  # type: ignore[assignment]  # checked against SEARCH_MODES by the caller
    if lines is not None:
        return look_up_many(retriever, lines, k=k, tokens=tokens)
    return iter([look_up(retriever, query, k=k, tokens=tokens)])


def _show(found: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(found)
    elif "hits" in found:
        _render_hits(found["hits"])
    else:
        for number, passage in enumerate(found["passages"], start=1):
            out().print(f"{number}. {passage['score']:.4f}  {shown(passage['source'])}", markup=False, style="bold")
            out().print("   " + passage["text"].strip().replace("\n", "\n   "), markup=False)


def _render_hits(hits: list[dict[str, Any]]) -> None:
    for rank, hit in enumerate(hits, start=1):
        message_ids = hit["message_ids"]
        ids = f"  messages {', '.join(message_ids[:6])}" if hit["kind"] == "chat" and message_ids else ""
        out().print(
            f"{rank}. {hit['score']:.4f}  {shown(hit['source'])}  [{hit['chunk_id'][:12]}]{ids}",
            markup=False,
            style="bold",
        )
        out().print("   " + hit["text"].strip().replace("\n", "\n   "), markup=False)


@app.command("stats")
def stats(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """How much pllm remembers, and where."""
    app_ctx: AppContext = ctx.obj
    store = app_ctx.store
    sources = store.sources()
    formats: dict[str, int] = {}
    for record in sources:
        formats[record.format] = formats.get(record.format, 0) + 1
    data = {
        "sources": len(sources),
        "chunks": store.count(),
        "messages": sum(r.messages for r in sources),
        "formats": formats,
        "embedding_model": store.embedding_model,
        "path": str(app_ctx.paths.memory_dir),
        "bytes_on_disk": _size(app_ctx.paths.memory_dir),
    }
    if json_output:
        print_json(data)
        return
    for key, value in data.items():
        out().print(f"{key:<16} {value}", markup=False)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@app.command("sources")
def sources(
    ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="JSON Lines on stdout.")
) -> None:
    """Every source: format, status (indexed, missing, or failed and why), chunk and message counts, when."""
    app_ctx: AppContext = ctx.obj
    rows = source_statuses(app_ctx.store.sources(), app_ctx.store.index.failures())
    for row in rows:
        if json_output:
            print_json(row)
        elif row["status"] == "failed":
            out().print(f"{'failed':<8} {shown(row['source'])}: {shown(row['reason'])}", markup=False, style="red")
        else:
            out().print(
                f"{row['status']:<8} {row['format']:<11} {row['chunks']:>5} chunks {row['messages']:>6} messages  "
                f"{row['ingested_at']}  {shown(row['source'])}",
                markup=False,
            )
    if not rows and not json_output:
        err().print("memory is empty: pllm ingest PATH adds files", markup=False)


def source_statuses(records: list[SourceRecord], failures: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per source: "indexed", "partial" (a large file cut short: the next ingest goes on with it),
    "missing" (its file is gone: `ingest --prune` drops it) or "failed" (its last ingest failed; an earlier
    version may still be indexed)."""
    rows: list[dict[str, Any]] = []
    for record in records:
        row: dict[str, Any] = {**record.to_dict(), "status": "indexed", "reason": "", "failed_at": ""}
        row["sha256"] = record.sha256.split("+")[0]
        row["redacted"] = "+redact" in record.sha256
        if PARTIAL in record.sha256:
            row["status"] = "partial"
        if not source_path(record.source).exists():
            row["status"] = "missing"
        if record.source in failures:
            row["status"], row["reason"] = "failed", failures[record.source][0]
            row["failed_at"] = failures[record.source][1]
        rows.append(row)
    known = {r.source for r in records}
    for source, (reason, failed_at) in failures.items():
        if source not in known:
            empty = {"format": "", "chunks": 0, "messages": 0, "ingested_at": "", "sha256": "", "redacted": False}
            rows.append({"source": source, **empty, "status": "failed", "reason": reason, "failed_at": failed_at})
    return sorted(rows, key=lambda row: str(row["source"]))


@app.command("sync")
def sync(
    ctx: typer.Context,
    wait: float | None = wait_option("this memory"),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """With memory on a Chroma server (memory_url): bring this home's index in step with the server's records now,
    whether or not another client has written since (every command does so when one has). Sources that are not
    whole on the server (an ingest cut short there) are listed as incomplete and left as they were."""
    app_ctx: AppContext = ctx.obj
    if app_ctx.memory_server is None:
        raise InputError("memory is embedded in this home: there is nothing to sync", hint="see docs/scale.md")
    with app_ctx.changing_memory(lock_wait(app_ctx, wait), waiting_notice(app_ctx)):
        done = app_ctx.store.sync().to_dict()
    if json_output:
        print_json(done)
    elif not app_ctx.quiet:
        for key, names in done.items():
            err().print(f"{key:<12} {len(names)}", markup=False)


@app.command("forget")
def forget(
    ctx: typer.Context,
    source: list[str] = typer.Argument(None, help="Source path(s) as listed by `pllm memory sources`."),
    conversation: str | None = typer.Option(None, "--conversation", help="Forget one conversation (its id)."),
    speaker: str | None = typer.Option(
        None,
        "--speaker",
        help="Forget every message by this speaker (the exact name; on e-mail the sender's name or address).",
    ),
    before: str | None = typer.Option(None, "--before", help="Forget everything dated before DATE (YYYY-MM-DD)."),
    wait: float | None = wait_option("this memory"),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Remove whole sources, or a conversation, a speaker's messages or everything before a date.

    --conversation, --speaker and --before are remembered: a later ingest of the same files keeps them out.
    Affected sources are rebuilt from their files; a source whose file is gone loses the affected chunks whole.
    Then the text index is compacted and the vector index copied, without them, into a fresh folder that
    replaces the old one, so no file of the memory keeps a trace (docs/retrieval.md, "Forgetting").
    Profile facts that came only from what is forgotten are removed too, and listed. While an ingest or
    another forget changes this memory, this exits 10 at once, or waits with --wait.
    """
    app_ctx: AppContext = ctx.obj
    rules = [
        *([ForgetRule("conversation", conversation)] if conversation else []),
        *([ForgetRule("speaker", speaker)] if speaker else []),
        *([ForgetRule.before(before)] if before else []),
    ]
    if not source and not rules:
        raise InputError("nothing to forget", hint="give a SOURCE, or --conversation, --speaker or --before")
    with app_ctx.changing_memory(lock_wait(app_ctx, wait), waiting_notice(app_ctx)):
        report, facts, deferred = _forget(app_ctx, source or [], rules)
    removed, by_rule = report.sources, report.rules
    if json_output:
        print_json(
            {
                "forgotten": [{"source": s, "chunks": n} for s, n in removed.items()],
                "profile_facts_removed": [{"id": f.id, "text": f.text} for f in facts],
                "profile_update_deferred": deferred,
                "rules": [
                    {"kind": rule.kind, "value": rule.value, "sources": [asdict(r) for r in results]}
                    for rule, results in by_rule.items()
                ],
                "vector_store_rebuilt": asdict(report.rebuilt) if report.rebuilt else None,
            }
        )
    elif not app_ctx.quiet:
        for name, count in removed.items():
            err().print(f"forgot {name} ({count} chunks)", markup=False)
        for rule, results in by_rule.items():
            messages = sum(r.messages_before - r.messages_after for r in results)
            chunks = sum(r.chunks_before - r.chunks_after for r in results)
            err().print(
                f"forgot {rule.describe()}: {messages} messages, {chunks} chunks fewer in {len(results)} sources; "
                "later ingests keep it out",
                markup=False,
            )
        if (rebuilt := report.rebuilt) is not None:
            err().print(
                f"rebuilt the vector index without it: {rebuilt.chunks} vectors in {rebuilt.seconds:.1f} s",
                markup=False,
            )
        for fact in facts:
            err().print(f"removed profile fact {fact.id}, which came only from it: {fact.text}", markup=False)
        if deferred:
            err().print(
                "the profile is being changed by another pllm: facts from what you forgot leave it at the next refresh",
                markup=False,
                style="yellow",
            )


def _forget(app_ctx: AppContext, source: list[str], rules: list[ForgetRule]) -> tuple[ForgetReport, list[Fact], bool]:
    """Under the memory lock: what was forgotten (and the vector store rebuilt without it), the profile facts
    dropped, and whether that had to be left to the next refresh."""
    store = app_ctx.store
    targets = []
    for given in source:
        resolved = source_key(Path(given).expanduser().absolute())  # a name of undecodable bytes, escaped
        name = resolved if store.source(resolved) else source_key(Path(given))
        if store.source(name) is None:
            raise NotFoundError(f"no source {shown(given)!r} in memory", hint="see the list: pllm memory sources")
        targets.append(name)
    options = IngestOptions(me=app_ctx.config.me_names, redact=app_ctx.config.redact)
    report = forget_memory(store, app_ctx.embedder, options, targets, rules)
    facts, deferred = _drop_profile_facts(app_ctx, store.index)
    return report, facts, deferred


def _drop_profile_facts(app_ctx: AppContext, index: ChunkIndex) -> tuple[list[Fact], bool]:
    """Remove the profile facts whose every source was just forgotten; (facts, whether it had to wait)."""
    files = ProfileFiles(app_ctx.paths)
    try:
        with profile_lock(files, wait=PROFILE_WAIT_SECONDS):
            return drop_facts_of_forgotten_memory(files, index), False
    except BusyError:
        return [], True
    except PllmError as error:  # memory is already forgotten: the profile must not turn that into a failure
        err().print(f"warning: the profile was not updated: {error.message}", markup=False, style="yellow")
        return [], True
