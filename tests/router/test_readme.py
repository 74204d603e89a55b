"""The README's promises, run as a new user would: its library snippet, as written, against the
simulated provider on loopback (in a fresh interpreter, with only the variables it names)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rlm_router.sim import SimServer

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPET_BASE = "http://127.0.0.1:8900/v1"  # `rlm-router sim --port 8900`, as the README says


def _library_blocks() -> tuple[str, str]:
    """The ```yaml and ```python blocks of the README's "As a library" section."""
    text = README.read_text()
    section = text.split("### As a library", 1)[1].split("\n### ", 1)[0]
    yaml_block = re.search(r"```yaml\n(.*?)```", section, re.S)
    python_block = re.search(r"```python\n(.*?)```", section, re.S)
    assert yaml_block and python_block, "the library section lost its policy or its code"
    return yaml_block.group(1), python_block.group(1)


def test_the_library_snippet_runs_as_written(sim_server: SimServer, tmp_path: Path) -> None:
    policy, code = _library_blocks()
    assert SNIPPET_BASE in policy and "api_key_env: SIM_KEY" in policy
    # Only the port differs: the test's simulator listens on a free one.
    (tmp_path / "policy.yaml").write_text(policy.replace(SNIPPET_BASE, sim_server.base_url))
    (tmp_path / "app.py").write_text(code)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    env["SIM_KEY"] = "sk-sim"  # as its first line says
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("llm "), done.stdout  # a short question stays direct
    assert lines[1].startswith("decision: "), done.stdout  # explain(): the decision, why
    assert lines[-2].strip() == "42"
    assert "'route': 'llm'" in lines[-1] and "decision_id" in lines[-1]
    assert not any("Provider List" in line or "Give Feedback" in line for line in lines)
