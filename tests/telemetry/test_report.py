"""Request records and the HTML report, from trace files written by our exporter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlm_router.router.cli import main
from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.records import iter_request_records, load_request_records
from rlm_router.telemetry.report import bucket_by_time, percentile, render_report
from tests.telemetry.telemetry_support import SampleDecision, Wired, write_sample_traces

N = 240


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_sample_traces(tmp_path_factory.mktemp("traces"), n=N)


def test_records_join_decision_outcome_and_feedback(sample: tuple[Path, Path]) -> None:
    traces, feedback = sample
    records = load_request_records([traces], [feedback])
    assert len(records) == N
    assert len({r.decision_id for r in records}) == N
    times = [r.start_time_unix_nano for r in records]
    assert times == sorted(times) and (times[-1] - times[0]) / 1e9 > 3600
    for r in records:
        assert r.decided_route in ("llm", "rlm") and r.route_served in ("llm", "rlm")
        assert r.score is not None and r.propensity is not None
        assert r.features["input_tokens"] > 0
        assert r.latency_ms is not None and r.cost_usd is not None
        if r.route_served == "rlm":
            assert r.rlm_iterations is not None and r.rlm_sub_calls is not None
    assert any(r.exploration for r in records)
    assert any(r.fallback != "none" for r in records)
    with_quality = [r for r in records if r.quality is not None]
    assert 0.15 * N < len(with_quality) < 0.45 * N  # about a third got feedback
    # Feedback spans in the trace file alone give the same qualities.
    from_spans = {r.decision_id: r.quality for r in load_request_records([traces])}
    assert all(from_spans[r.decision_id] == r.quality for r in with_quality)


def test_records_ignore_inner_spans_and_join_across_lines(wired: Wired) -> None:
    for route in ("llm", "rlm"):
        with wired.telemetry.request_span() as req:
            req.decision(SampleDecision(id=f"d-{route}", route=route))
            with req.chat(model="openai/sim-mini"):
                pass
            req.outcome(route_served=route)
    from rlm_router.telemetry.otlp_json import encode_spans_line, parse_line

    spans = wired.finished()
    # One span per line, request spans before their decide spans: still joined.
    lines = [encode_spans_line([s]) for s in reversed(spans)]
    records = list(iter_request_records(r for line in lines for r in parse_line(line)))
    assert sorted(r.decision_id or "" for r in records) == ["d-llm", "d-rlm"]
    assert {r.decided_route for r in records} == {"llm", "rlm"}


def test_percentile_and_buckets() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)
    assert bucket_by_time([]).labels == []


def test_report_has_every_plot_with_data(sample: tuple[Path, Path]) -> None:
    traces, feedback = sample
    html = render_report(load_request_records([traces], [feedback]))
    charts = re.findall(r'<svg class="chart" data-marks="(\d+)"', html)
    assert len(charts) == 8
    assert all(int(marks) > 0 for marks in charts), charts
    for title in (
        "Requests per route",
        "Cost per route",
        "Latency p50 / p95",
        "Escalation rate",
        "Decision score distribution",
        "Fallbacks",
        "RLM iterations",
        "RLM sub-calls",
    ):
        assert title in html  # fmt: skip
    assert "no data" not in html
    # Self-contained: no scripts, no external resources.
    assert "<script" not in html
    assert not re.search(r'(src|href)\s*=\s*"', html)
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_report_of_nothing_is_a_valid_page() -> None:
    html = render_report([])
    assert html.count("no data") == 8
    assert "no requests" in html


def test_dashboard_command(sample: tuple[Path, Path], tmp_path: Path) -> None:
    traces, feedback = sample
    output = tmp_path / "report.html"
    args = ["dashboard", "--traces", str(traces), "--feedback", str(feedback), "-o", str(output)]
    assert main(args) == 0
    assert output.read_text().count('<svg class="chart"') == 8
    assert main(["dashboard", "--traces", str(tmp_path / "missing.jsonl")]) == 2


def test_dashboard_on_an_empty_or_wrong_file_fails_and_writes_nothing(
    sample: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _, feedback = sample  # the feedback file given as traces: a likely mix-up
    for wrong in (empty, feedback):
        output = tmp_path / f"{wrong.stem}.html"
        assert main(["dashboard", "--traces", str(wrong), "-o", str(output)]) == 1
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith(f"rlm-router dashboard: no rlm-router request in {wrong}")
        assert not output.exists()


def test_request_without_decision_is_reported(wired: Wired) -> None:
    with pytest.raises(ValueError), wired.telemetry.request_span():
        raise ValueError("invalid body")
    (record,) = iter_request_records(r for s in wired.finished() for r in _roundtrip(s))
    assert record.decided_route is None
    assert record.error_type == "ValueError"
    assert record.route_served == "unknown"
    assert sc.SPAN_REQUEST  # the record came from the request span alone


def _roundtrip(span: object) -> list[object]:
    from rlm_router.telemetry.otlp_json import encode_spans_line, parse_line

    return list(parse_line(encode_spans_line([span])))  # type: ignore[list-item]


def test_dashboard_reads_a_collector_file(tmp_path: Path) -> None:
    collector_file = Path(__file__).parent / "data" / "collector_traces.jsonl"
    (record,) = load_request_records([collector_file])
    assert record.decision_id == "d-42" and record.decided_route == "rlm"
    assert record.exploration is True and record.fallback == "rlm_to_llm"
    assert record.features["input_tokens"] == 123456
    output = tmp_path / "report.html"
    assert main(["dashboard", "--traces", str(collector_file), "-o", str(output)]) == 0
    assert "d-42" not in output.read_text()  # ids are data, not display
    assert output.read_text().count('<svg class="chart"') == 8
