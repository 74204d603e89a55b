"""Real text on this machine, read deterministically, for the held-out routing evaluation.

Each source is a name → text function over files that ship with the OS or with Python
(standard-library source, man pages, licences, Debian changelogs, dpkg's package database,
configuration files, litellm's model price list, this repository's git history at a fixed
commit). Files are read in sorted order so the same machine gives the same text. Texts are
cut to a target token count with ``fit``; a source too short is repeated (and says so).

``SOURCE_PATHS`` names every file glob used, so a test can assert that the training corpus
(``policies.corpus``) reads none of them.
"""

from __future__ import annotations

import glob
import gzip
import json
import subprocess
import sysconfig
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

from rlm_router.rlm_core.tokens import count_tokens

STDLIB = Path(sysconfig.get_paths()["stdlib"])
REPO = Path(__file__).resolve().parents[2]
GIT_COMMIT = "6b3df23"  # a fixed point of this repository's history (immutable)
MAN_LANGS = {
    "en": "",
    "fr": "fr",
    "de": "de",
    "es": "es",
    "pt": "pt",
    "it": "it",
    "ja": "ja",
    "zh": "zh_CN",
}

# Every path pattern a source reads (checked disjoint from the training corpus's sources).
SOURCE_PATHS: dict[str, tuple[str, ...]] = {
    "code_json": (f"{STDLIB}/json/*.py",),
    "code_email": (f"{STDLIB}/email/*.py",),
    "code_asyncio": (f"{STDLIB}/asyncio/*.py",),
    "code_http": (f"{STDLIB}/http/*.py", f"{STDLIB}/urllib/*.py"),
    "code_small": (f"{STDLIB}/bisect.py", f"{STDLIB}/colorsys.py", f"{STDLIB}/fnmatch.py"),
    "dpkg": ("/var/lib/dpkg/status",),
    "changelogs": ("/usr/share/doc/*/changelog.Debian.gz",),
    "licences": ("/usr/share/common-licenses/*",),
    "conf": ("/etc/*.conf",),
    "prices": ("<site-packages>/litellm/model_prices_and_context_window_backup.json",),
    "gitlog": (f"git log {GIT_COMMIT}",),
    # English man pages: a-c only (the full set is 76 MB; 1 MB is all a case needs).
    **{
        f"man_{lang}": (
            f"/usr/share/man/{sub + '/' if sub else ''}man1/{'[a-c]' if not sub else ''}*.1.gz",
        )
        for lang, sub in MAN_LANGS.items()
    },
}
# The fresh set's sources (``fresh.py``): none of the above, none of the training corpus's.
FRESH_PATHS: dict[str, tuple[str, ...]] = {
    "charmap": ("/usr/share/i18n/charmaps/UTF-8.gz",),
    "tzdata": ("/usr/share/zoneinfo/tzdata.zi",),
    "topics": (f"{STDLIB}/pydoc_data/topics.py",),
    "idlelib": (f"{STDLIB}/idlelib/*.py",),
    "tkinter": (f"{STDLIB}/tkinter/*.py",),
    "services": ("/etc/services",),
    "zonetab": ("/usr/share/zoneinfo/zone1970.tab",),
}
SOURCE_PATHS.update(FRESH_PATHS)


def _read(path: str) -> str:
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", "replace")


def _files(patterns: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        out.extend(sorted(p for p in glob.glob(pattern) if Path(p).is_file()))
    return out


def _code(name: str) -> str:
    parts = []
    for path in _files(SOURCE_PATHS[name]):
        rel = Path(path).relative_to(STDLIB)
        parts.append(f"# ===== file: {rel} =====\n{_read(path)}")
    return "\n".join(parts)


def _dpkg() -> str:
    # Stanzas sorted by package name: the file's order follows installation history.
    stanzas = [s for s in _read("/var/lib/dpkg/status").split("\n\n") if s.strip()]
    return "\n\n".join(sorted(stanzas))


def _concat(name: str, header: str = "") -> str:
    parts = []
    for path in _files(SOURCE_PATHS[name]):
        text = _read(path)
        parts.append(f"{header.format(path=path)}{text}" if header else text)
    return "\n".join(parts)


def _prices() -> str:
    import litellm

    path = Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("sample_spec", None)
    # One model per line: a record-shaped JSON dump.
    return "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()) + "\n}"


def _gitlog() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "log", "--stat", "--date=iso", GIT_COMMIT],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


_BUILDERS: dict[str, Callable[[], str]] = {
    "code_json": lambda: _code("code_json"),
    "code_email": lambda: _code("code_email"),
    "code_asyncio": lambda: _code("code_asyncio"),
    "code_http": lambda: _code("code_http"),
    "code_small": lambda: _code("code_small"),
    "dpkg": _dpkg,
    "changelogs": lambda: _concat("changelogs"),
    "licences": lambda: _concat("licences", "==> {path} <==\n"),
    "conf": lambda: _concat("conf", "# ---- {path}\n"),
    "prices": _prices,
    "gitlog": _gitlog,
}
_BUILDERS.update({f"man_{lang}": partial(_concat, f"man_{lang}") for lang in MAN_LANGS})
NAMES = tuple(_BUILDERS)  # every source of the first set, in a fixed order
_BUILDERS.update(
    {
        "charmap": lambda: _concat("charmap"),
        "tzdata": lambda: _concat("tzdata"),
        "topics": lambda: _concat("topics"),
        "idlelib": lambda: _code("idlelib"),
        "tkinter": lambda: _code("tkinter"),
        "services": lambda: _concat("services"),
        "zonetab": lambda: _concat("zonetab"),
    }
)


@cache
def source(name: str) -> str:
    """The whole text of source ``name`` (cached)."""
    text = _BUILDERS[name]()
    if not text.strip():
        raise FileNotFoundError(f"source {name!r} is empty on this machine: {SOURCE_PATHS[name]}")
    return text


@cache
def _tokens_per_char(name: str) -> float:
    text = source(name)
    sample = text[:400_000]
    return count_tokens(sample) / max(1, len(sample))


def fit(name: str, n_tokens: int, *, offset: float = 0.0) -> str:
    """About ``n_tokens`` tokens of source ``name``, starting ``offset`` (0-1) into it,
    cut at a line break; the source is repeated when it is shorter than asked."""
    text = source(name)
    start = int(offset * len(text))
    start = text.find("\n", start) + 1 if start else 0
    n_chars = int(n_tokens / _tokens_per_char(name))
    for _ in range(2):  # the rate varies along a source: measure it on the cut, cut again
        out = text[start : start + n_chars]
        while len(out) < n_chars:
            out += "\n" + text[: n_chars - len(out)]
        n_chars = int(n_chars * n_tokens / max(1, count_tokens(out)))
    cut = out.rfind("\n", 0, n_chars)
    return out[:cut] if cut > n_chars // 2 else out[:n_chars]
