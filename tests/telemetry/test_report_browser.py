"""The HTML report in headless Chromium: the plots render with data, and a screenshot is saved.

Set RLM_ROUTER_UPDATE_SCREENSHOTS=1 to also refresh docs/img/report.png for the README.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from rlm_router.telemetry.report import ROUTE_COLORS, read_report_data, render_report, write_report
from tests.telemetry.telemetry_support import write_sample_traces

pytestmark = pytest.mark.server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO = Path(__file__).resolve().parents[2]
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/system-deps installs it)")
    profile = tmp_path / "profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA/RGB bytes) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and color in (2, 6)
    bpp = 4 if color == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
        previous = line
    return width, height, rows


def _count_color(rows: list[bytes], hex_color: str, tolerance: int = 12) -> int:
    target = bytes.fromhex(hex_color.lstrip("#"))
    count = 0
    for row in rows:
        for x in range(0, len(row), 3):
            if all(abs(row[x + k] - target[k]) <= tolerance for k in range(3)):
                count += 1
    return count


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    traces, feedback = write_sample_traces(tmp_path, n=240)
    report = tmp_path / "report.html"
    assert write_report([traces], report, feedback_paths=[feedback]) == 240

    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    assert dom.count('<svg class="chart"') == 8
    marks = [int(m) for m in __import__("re").findall(r'data-marks="(\d+)"', dom)]
    assert len(marks) == 8 and min(marks) > 0, marks
    assert dom.count('class="mark"') == sum(marks)

    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1900", report.as_uri())
    width, height, rows = _decode_png(shot.read_bytes())
    assert (width, height) == (1280, 1900)
    # The routes' colours cover a real area: bars and lines were painted, not just text.
    assert _count_color(rows, ROUTE_COLORS["llm"]) > 5000
    assert _count_color(rows, ROUTE_COLORS["rlm"]) > 5000
    if os.environ.get("RLM_ROUTER_UPDATE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "img" / "report.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_empty_report_renders_in_chromium(tmp_path: Path) -> None:
    # A proxy that has served nothing yet: the library renders empty charts (the CLI refuses
    # an empty trace file instead, since that is usually the wrong file).
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    report = tmp_path / "report.html"
    report.write_text(render_report(read_report_data([empty]), sources=[empty.name]))
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    assert dom.count('<svg class="chart"') == 8 and dom.count("no data") == 8
