"""Real text for the training corpus, from files on the machine that the held-out evaluation
(``benchmarks.routing_eval.sources``) does not read, plus synthetic records.

Kinds of text: ``code`` (standard-library packages), ``prose`` (Debian copyright files),
``manual`` (man pages of sections 5 and 8, roff source without blank lines), ``records``
(numpy's CSV test vectors, botocore's endpoint JSON when installed, and synthetic logs, CSV,
JSON lines and OOLONG-like lines). Texts are read once, in sorted order, capped per source.
"""

from __future__ import annotations

import glob
import gzip
import random
import sysconfig
from collections.abc import Callable
from datetime import date
from functools import cache
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PURELIB = Path(sysconfig.get_paths()["purelib"])
CAP_CHARS = 400_000
SOURCE_PATHS: dict[str, tuple[str, ...]] = {
    "code": tuple(
        f"{STDLIB}/{pkg}/*.py"
        for pkg in (
            "logging",
            "xml/dom",
            "unittest",
            "concurrent/futures",
            "importlib",
            "multiprocessing",
            "sqlite3",
            "wsgiref",
        )
    ),
    "prose": ("/usr/share/doc/*/copyright",),
    "manual": ("/usr/share/man/man5/*.5.gz", "/usr/share/man/man8/*.8.gz"),
    "csv": (f"{PURELIB}/numpy/random/tests/data/*.csv",),
    "json": (f"{PURELIB}/botocore/data/endpoints.json",),
}
KINDS_OF_TEXT = ("code", "prose", "manual", "records")


def _read(path: str) -> str:
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", "replace")


@cache
def _files_text(name: str) -> str:
    parts: list[str] = []
    size = 0
    for pattern in SOURCE_PATHS[name]:
        for path in sorted(glob.glob(pattern)):
            if size > CAP_CHARS:
                break
            text = _read(path)
            if name == "code":
                text = f"# ----- {Path(path).name}\n{text}"
            parts.append(text)
            size += len(text)
    return "\n".join(parts)[:CAP_CHARS]


_NAMES = ("Alder", "Brisa", "Corin", "Delphine", "Emrys", "Fenna", "Galen", "Hollis", "Ione")
_WORDS = (
    "invoice",
    "ledger",
    "harbour",
    "turbine",
    "orchard",
    "archive",
    "tariff",
    "kiln",
    "audited",
    "repaired",
    "moved",
    "signed",
    "cancelled",
    "approved",
    "shipped",
)
_CATEGORIES = ("billing", "shipping", "refund", "login", "hardware", "feedback")


def _record(rng: random.Random, style: int) -> str:
    day = date(2023, rng.randint(1, 12), rng.randint(1, 28)).isoformat()
    uid = rng.randint(1000, 99999)
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
    cat = rng.choice(_CATEGORIES)
    name = rng.choice(_NAMES)
    if style == 0:
        return f"Date: {day} || User: {uid} || Instance: {text}"
    if style == 1:
        return f"{day},{uid},{cat},{name},{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if style == 2:
        return f'{{"ts": "{day}", "user": {uid}, "kind": "{cat}", "note": "{text}"}}'
    if style == 3:
        return f"{day}T10:{rng.randint(10, 59)}:00 INFO user={uid} category={cat} msg={text}"
    return f"{uid}\t{name}\t{cat}\t{day}\t{rng.randint(1, 50)}"


def synthetic_records(rng: random.Random, n_chars: int) -> str:
    style = rng.randrange(5)
    lines: list[str] = []
    size = 0
    while size < n_chars:
        line = _record(rng, style)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def _real_records(rng: random.Random) -> str:
    options = [name for name in ("csv", "json") if _files_text(name)]
    return _files_text(rng.choice(options)) if options else ""


_TEXT: dict[str, Callable[[random.Random], str]] = {
    "code": lambda rng: _files_text("code"),
    "prose": lambda rng: _files_text("prose"),
    "manual": lambda rng: _files_text("manual"),
}


def text_of(kind: str, rng: random.Random, n_chars: int) -> str:
    """About ``n_chars`` characters of ``kind`` text, from a random offset."""
    if kind == "records":
        real = _real_records(rng) if rng.random() < 0.4 else ""
        if len(real) < n_chars:
            return synthetic_records(rng, n_chars)
        source = real
    else:
        source = _TEXT[kind](rng)
    if len(source) <= n_chars:
        return source
    start = rng.randrange(0, len(source) - n_chars)
    start = source.find("\n", start) + 1
    return source[start : start + n_chars]
