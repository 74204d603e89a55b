"""JSON for the worker's channel and context, from CPython's C accelerator (``_json``).

``import json`` costs every worker start ~12 ms of CPU (2-core VM, load ~2): ``json.decoder``
and ``json.encoder`` compile their regular expressions at import, and ``re`` pulls in ``enum``.
These are the scanner and encoder that ``json.loads`` and ``json.dumps`` themselves run (one
shot, no indent, ASCII output), so the text read and written is the same. Where ``_json`` is
missing (an interpreter other than CPython), the ``json`` package is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_WHITESPACE = " \t\n\r"  # what json.loads skips around the document

try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # pragma: no cover - not CPython
    import json as _json_package

    def loads(text: str) -> object:
        return _json_package.loads(text)

    def dumps(value: object, default: Callable[[object], object]) -> str:
        return _json_package.dumps(value, default=default)

else:

    class _Context:
        """The decoder settings the C scanner reads (``json.JSONDecoder()``'s defaults)."""

        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {
            "-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan"),
        }.__getitem__  # fmt: skip

    # typeshed types the argument as a scanner, which has these same attributes.
    _scan = make_scanner(_Context())  # type: ignore[arg-type]

    def loads(text: str) -> object:
        """``json.loads`` of a ``str`` (a ValueError for anything but one JSON document)."""
        start = 0
        while start < len(text) and text[start] in _WHITESPACE:
            start += 1
        try:
            value, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"not JSON at character {exc.value}") from None
        if end != len(text) and text[end:].strip(_WHITESPACE):
            raise ValueError(f"extra data after the JSON document at character {end}")
        return value

    def dumps(value: object, default: Callable[[object], object]) -> str:
        """``json.dumps(value, default=default)``."""
        encode = make_encoder(
            {}, default, encode_basestring_ascii, None, ": ", ", ", False, False, True
        )
        return "".join(encode(value, 0))
