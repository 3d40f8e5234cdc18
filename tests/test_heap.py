"""heap.cleared_allocations: memory handed out while Chroma runs holds a fill byte, not old contents."""

from __future__ import annotations

import ctypes

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
