"""``python -m bench.idle_heap`` counts the heap of the idle connections it opens."""

from __future__ import annotations

import re

import pytest
import uvloop

from bench import idle_heap


@pytest.mark.parametrize("api", ["callback", "iter", "hub"])
def test_idle_heap_reports_bytes_per_connection_and_their_sites(api: str, capsys) -> None:
    uvloop.run(idle_heap.measure(api, 40, 1, 20))
    lines = capsys.readouterr().out.splitlines()
    total = re.fullmatch(rf"{api}: ([\d,]+) B of Python heap per idle connection", lines[0])
    assert total is not None, lines[0]
    # An upgraded connection holds at least its Connection and its protocol object.
    assert int(total.group(1).replace(",", "")) > 500
    assert any("Connection(" in line for line in lines[1:])
    if api == "hub":  # connected and subscribed: the hub's session and subscriptions count
        assert any("Session(" in line for line in lines[1:])
