"""``python -m bench.glue`` measures both APIs on the glue it drives."""

from __future__ import annotations

import asyncio

import pytest

from bench import glue


@pytest.mark.parametrize("api", ["callback", "iter"])
def test_glue_measures_both_apis(api: str) -> None:
    nanoseconds = asyncio.run(glue.measure(api, 64, 4, 400))
    assert nanoseconds > 0
