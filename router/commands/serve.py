"""``rlm-router serve``: the LiteLLM proxy with the router plugin wired in, from one YAML file."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rlm_core.env import offline_environ
from router.plugin.config import CONFIG_ENV, ServiceConfig, ServiceConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="start the LiteLLM proxy with the router plugin",
        description=(
            "Start the LiteLLM proxy (the 'proxy' extra) with the router plugin. The config is "
            "a LiteLLM proxy config plus an 'rlm_router' section (see router/plugin/config.py "
            "and the README). Requires LITELLM_MASTER_KEY (or general_settings.master_key)."
        ),
    )
    parser.add_argument("--config", required=True, help="router.yaml (policy + LiteLLM config)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the generated LiteLLM proxy config and exit",
    )
    parser.set_defaults(handler=run)


def proxy_command(config_path: Path, *, host: str, port: int) -> list[str]:
    """The ``litellm`` command line for a generated proxy config."""
    candidate = Path(sys.executable).parent / "litellm"
    executable = str(candidate) if candidate.exists() else shutil.which("litellm")
    if executable is None:
        raise ServiceConfigError(
            "the 'litellm' proxy is not installed; "
            "install the extra: pip install 'rlm-router[proxy]'"
        )
    return [
        executable,
        "--config",
        str(config_path),
        "--host",
        host,
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def run(args: argparse.Namespace) -> int:
    try:
        config = ServiceConfig.load(args.config)
        if args.print_config:
            import yaml

            sys.stdout.write(yaml.safe_dump(config.proxy_config(), sort_keys=False))
            return 0
        settings = config.litellm.get("general_settings") or {}
        if not os.environ.get("LITELLM_MASTER_KEY") and not settings.get("master_key"):
            raise ServiceConfigError(
                "the LiteLLM proxy refuses to start without a master key: set "
                "LITELLM_MASTER_KEY=sk-... (or general_settings.master_key in the config)"
            )
        directory = tempfile.mkdtemp(prefix="rlm-router-serve-")
        generated = config.write_proxy_config(directory)
        command = proxy_command(generated, host=args.host, port=args.port)
    except ServiceConfigError as exc:
        print(f"rlm-router serve: {exc}", file=sys.stderr)
        return 2
    # The proxy imports litellm before our plugin loads: give it the offline defaults here.
    env = offline_environ(os.environ)
    env[CONFIG_ENV] = str(config.path)
    print(
        f"rlm-router serve: LiteLLM proxy on http://{args.host}:{args.port} "
        f"(virtual model(s): {', '.join(config.virtual_models)}; config {generated})",
        file=sys.stderr,
    )
    sys.stderr.flush()
    os.execve(command[0], command, env)  # the proxy takes over this process
