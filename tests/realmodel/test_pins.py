"""The realmodel extra is pinned the same way in its three places, and hash-locked.

pyproject.toml's extra is what users install, constraints.txt is what the suite's venv
resolves against, requirements.realmodel.txt is what `make test-realmodel` installs with
--require-hashes. Runs without the model.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def _pins(lines: list[str]) -> dict[str, str]:
    found = (_PIN.match(line.strip()) for line in lines)
    return {m[1].lower(): m[2] for m in found if m}


def test_the_realmodel_pins_agree_and_carry_hashes() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["realmodel"]
    wanted = _pins(extra)
    assert len(wanted) == 23  # xllamacpp and the 22 weight chunks, each pinned with ==
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    assert {name: constraints.get(name) for name in wanted} == wanted

    text = (ROOT / "requirements.realmodel.txt").read_text()
    entries = [e for e in re.split(r"\n(?=[A-Za-z])", text) if _PIN.match(e)]
    assert _pins(entries) == wanted
    for entry in entries:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry
