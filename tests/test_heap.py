"""heap.cleared_allocations: memory handed out while Chroma runs holds a fill byte, not old contents."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from pllm_cli.memory import heap

libc = heap._glibc()
pytestmark = pytest.mark.skipif(libc is None, reason="glibc only")


def allocated(size: int = 4096) -> bytes:
    assert libc is not None
    libc.malloc.restype = ctypes.c_void_p
    address = libc.malloc(size)
    try:
        return ctypes.string_at(address, size)
    finally:
        libc.free(ctypes.c_void_p(address))


def test_memory_allocated_inside_is_filled_also_after_a_nested_call_ends() -> None:
    filled = bytes([heap.FILL ^ 0xFF]) * 4096
    with heap.cleared_allocations():
        assert allocated() == filled
        with heap.cleared_allocations():
            assert allocated() == filled
        assert allocated() == filled  # the inner call did not switch it off
    assert heap._depth == 0


class RecordingLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return 1


def test_every_chroma_call_runs_with_the_fill_on_once_however_nested(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pllm_cli.memory.store import ChromaStore

    recording = RecordingLibc()
    monkeypatch.setattr(heap, "_glibc", lambda: recording)
    monkeypatch.setenv("MALLOC_PERTURB_", "7")
    store = ChromaStore(tmp_path / "memory", "fake")
    try:
        assert store.dense_search([0.1] * 8, 5) == []  # opens the collection inside a query: nested
        on, off = (heap.M_PERTURB, heap.FILL), (heap.M_PERTURB, 7)  # the user's own fill byte is given back
        assert recording.calls[:2] == [on, off] and recording.calls.count(on) == recording.calls.count(off)
        recording.calls.clear()
        with pytest.raises(ValueError):
            store.collection.get(ids=["x"], include=["nonsense"])
        assert recording.calls == [on, off, on, off] and heap._depth == 0  # looking up `get`, then calling it
    finally:
        store.close()
