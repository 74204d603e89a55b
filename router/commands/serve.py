"""``rlm-router serve``: the LiteLLM proxy with the router plugin wired in, from one YAML file."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rlm_router.rlm_core.env import offline_environ
from rlm_router.rlm_core.errors import ConfigError
from rlm_router.router.plugin.config import CONFIG_ENV, ServiceConfig, ServiceConfigError


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


def check_port(host: str, port: int) -> None:
    """Fail now, in one line, when the proxy could not bind ``host:port`` (it would fail
    seconds later, after printing its URL, in a long traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn does: a port in TIME_WAIT is usable, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServiceConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another port with --port"
            ) from None


def check_service(config: ServiceConfig) -> None:
    """Build the router and the dispatcher exactly as the plugin will inside the proxy, so a
    bad policy value or model group is reported before anything starts."""
    from rlm_router.router.plugin.service import RouterService

    service = RouterService(config)
    policy = service.router.policy
    service.dispatcher  # noqa: B018 - built for its validation
    groups = {"direct": config.direct, "rlm_root": config.rlm_root, "rlm_sub": config.rlm_sub}
    for role, group in groups.items():
        target = getattr(policy.models, role)
        if group is None and target.api_key_env and target.api_key_env not in os.environ:
            raise ServiceConfigError(
                f"models.{role}.api_key_env of the policy names {target.api_key_env}, "
                f"which is not set (the key for {target.model})"
            )


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
        check_port(args.host, args.port)
        check_service(config)
    except ConfigError as exc:  # ServiceConfigError, PolicyError, ...: file, line, key
        print(f"rlm-router serve: {exc}", file=sys.stderr)
        return 2
    # The proxy imports litellm before our plugin loads: give it the offline defaults here.
    env = offline_environ(os.environ)
    env[CONFIG_ENV] = str(config.path)
    with tempfile.TemporaryDirectory(prefix="rlm-router-serve-") as directory:
        generated = config.write_proxy_config(directory)
        try:
            command = proxy_command(generated, host=args.host, port=args.port)
        except ServiceConfigError as exc:
            print(f"rlm-router serve: {exc}", file=sys.stderr)
            return 2
        print(
            f"rlm-router serve: LiteLLM proxy on http://{args.host}:{args.port} "
            f"(virtual model(s): {', '.join(config.virtual_models)})",
            file=sys.stderr,
        )
        sys.stderr.flush()
        return run_proxy(command, env)


def run_proxy(command: list[str], env: dict[str, str]) -> int:
    """Run the proxy as a child (so the generated config's folder is removed afterwards),
    passing SIGTERM on; Ctrl-C reaches it directly through the terminal's process group."""
    process = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                process.send_signal(signal.SIGINT)  # the terminal's Ctrl-C, or ours alone
    finally:
        signal.signal(signal.SIGTERM, previous)
