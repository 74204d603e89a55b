"""The proxy benchmark's summary: ratios against the bare proxy, for the plugin and for a
baseline plugin (``--baseline``) measured in the same rounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.proxy_bench import (
    Measurement,
    baseline_names,
    main,
    render,
    summarize,
    tree_plugin_config,
)


def _measured(cpu_s: float, latency_ms: float, rps: float) -> Measurement:
    return Measurement(
        latencies_ms=[latency_ms] * 100, throughput_rps=[rps], served=100, cpu_s=cpu_s
    )


def test_the_baseline_plugin_gets_its_own_ratios_and_no_verdict() -> None:
    results = {
        50: {
            "bare": _measured(1.0, 10.0, 50.0),
            "plugin": _measured(1.1, 11.0, 48.0),
            "baseline": _measured(1.2, 12.0, 45.0),
        }
    }
    summary = summarize(results)
    level = summary["levels"]["50"]
    assert level["cpu_ratio"] == pytest.approx(1.1)
    assert level["meets_targets"] == {"cpu": True, "p99": True, "throughput": True}
    assert level["baseline"]["cpu_ratio"] == pytest.approx(1.2)
    assert level["baseline"]["added_cpu_ms_per_request"] == pytest.approx(2.0)
    assert level["baseline"]["throughput_ratio"] == pytest.approx(0.9)
    rows = {line.split()[1]: line.split() for line in render(summary).splitlines()[1:4]}
    assert rows["plugin"][-1] == "met"
    assert rows["baseline"][-4:] == ["0.90", "1.20", "1.20", "-"]


def test_a_baseline_without_the_package_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--levels", "1", "--baseline", str(tmp_path)])
    assert stopped.value.code == 2
    assert "no rlm_router package there" in capsys.readouterr().err


def test_every_baseline_gets_its_own_ratios() -> None:
    results = {
        200: {
            "bare": _measured(1.0, 10.0, 50.0),
            "plugin": _measured(1.1, 11.0, 48.0),
            "baseline": _measured(1.2, 12.0, 45.0),
            "baseline2": _measured(1.3, 10.0, 40.0),
        }
    }
    level = summarize(results)["levels"]["200"]
    assert level["baseline"]["cpu_ratio"] == pytest.approx(1.2)
    assert level["baseline2"]["cpu_ratio"] == pytest.approx(1.3)
    assert level["baseline2"]["throughput_ratio"] == pytest.approx(0.8)
    assert baseline_names(3) == ["baseline", "baseline2", "baseline3"]


def test_a_baseline_tree_writes_its_proxy_config_with_its_own_code(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "__init__.py").write_text("")
    (bench / "proxy_bench.py").write_text(
        "def plugin_config(base_url):\n"
        "    return {'litellm_settings': {'callbacks': ['router.plugin.hook']}, 'url': base_url}\n"
    )
    config = tree_plugin_config(tmp_path, "http://127.0.0.1:1/v1")
    assert config == {
        "litellm_settings": {"callbacks": ["router.plugin.hook"]},
        "url": "http://127.0.0.1:1/v1",
    }
