"""``rlm-router sim`` starts the simulated provider and prints where it serves."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_cli_serves_and_stops_on_sigterm() -> None:
    script = Path(sys.executable).with_name("rlm-router")
    process = subprocess.Popen(
        [str(script), "sim", "--port", "0", "--time-scale", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("simulated provider serving at http://127.0.0.1:"), line
        base_url = line.split(" at ", 1)[1].strip()
        models = httpx.get(f"{base_url}/models", timeout=5).json()
        assert {m["id"] for m in models["data"]} >= {"sim-large", "sim-mini"}
        reply = httpx.post(
            f"{base_url}/chat/completions",
            json={
                "model": "sim-mini",
                "messages": [{"role": "user", "content": "What is 6 times 7?"}],
            },
            timeout=5,
        ).json()
        assert reply["choices"][0]["message"]["content"] == "42"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


def test_cli_rejects_negative_time_scale() -> None:
    script = Path(sys.executable).with_name("rlm-router")
    done = subprocess.run(
        [str(script), "sim", "--time-scale", "-1"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "--time-scale" in done.stderr
