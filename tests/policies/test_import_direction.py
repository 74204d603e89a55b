"""``policies`` decides on features it owns and never imports ``router`` (DESIGN.md data flow)."""

from __future__ import annotations

import ast
from pathlib import Path

POLICIES = Path(__file__).parents[2] / "policies"


def test_policies_never_imports_router() -> None:
    offenders = []
    for path in sorted(POLICIES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}:{node.lineno} {n}"
                for n in names
                if n == "router" or n.startswith("router.")
            ]
    assert offenders == []
