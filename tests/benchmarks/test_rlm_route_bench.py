"""The RLM route's benchmark runs every mode end to end: each request takes the RLM route, on
asyncio's loop, on uvloop and through the real LiteLLM proxy, and the table says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import rlm_route_bench


@pytest.mark.slow
@pytest.mark.server
def test_every_mode_answers_on_the_rlm_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        rlm_route_bench.main(["--requests", "2", "--tokens", "32000", "--out", str(tmp_path)]) == 0
    )
    result = json.loads((tmp_path / "rlm_route_bench.json").read_text())
    assert list(result["modes"]) == list(rlm_route_bench.MODES)
    for summary in result["modes"].values():
        assert summary["n"] == 2 and summary["routes"] == ["rlm"]
    out = capsys.readouterr().out
    assert all(mode in out for mode in rlm_route_bench.MODES)


@pytest.mark.slow
@pytest.mark.server
def test_a_size_that_stays_direct_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="routed \\['llm'\\], not rlm"):
        rlm_route_bench.main(["--requests", "1", "--tokens", "2000", "--out", str(tmp_path)])
    assert not (tmp_path / "rlm_route_bench.json").exists()
