"""Fuzzing the importers (hypothesis): whatever the bytes, a file goes in or fails alone with a clean error,
never a traceback. A bounded number of examples here (a few seconds); bench/fuzz_importers.py runs long."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from importer_fuzz import inputs, traceback_of


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zip archives with a member twice are part of the fuzz
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(inputs)
def test_importers_never_raise_a_traceback(case: tuple[str, bytes]) -> None:
    name, data = case
    assert traceback_of(name, data) is None
