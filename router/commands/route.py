"""``rlm-router route``: decide the route of one request read from stdin (no model is called)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "route",
        help="decide the route for a request read from stdin",
        description="Read an OpenAI chat-completion request (JSON) from stdin and print where "
        "the policy routes it. Exit 2 on an invalid request or policy.",
    )
    parser.add_argument("--config", help="policy YAML (default: the shipped policy)")
    parser.add_argument("--explain", action="store_true", help="print the full explanation")
    parser.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header, e.g. x-latency-budget-ms:2000 (repeatable)",
    )
    parser.set_defaults(handler=run)


_WHERE = {
    "tail": "end of the last user message",
    "head": "start of the last user message",
    "tag": "tagged in the last user message",
    "system": "system prompt",
}


def run(args: argparse.Namespace) -> int:
    from rlm_router.policies import PolicyError
    from rlm_router.router import InvalidRequest, Router

    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            print(f"rlm-router route: --header {item!r} is not NAME:VALUE", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    if sys.stdin.isatty():  # otherwise a user who forgot the pipe sees a silent hang
        print(
            "rlm-router route: reading the request (JSON) from stdin; end with Ctrl-D, "
            "or pipe it in: rlm-router route < request.json",
            file=sys.stderr,
        )
    try:
        body = json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        print(f"rlm-router route: stdin is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        router = Router.from_config(args.config)
        decision = router.decide(body, headers or None)
    except (PolicyError, InvalidRequest) as exc:
        print(f"rlm-router route: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(decision.to_dict()))
    elif args.explain:
        from rlm_router.router.request import ChatRequest

        request = ChatRequest.parse(body, headers or None)
        shown = " ".join(request.question.split())
        if len(shown) > 300:
            shown = f"{shown[:200]} … {shown[-90:]}"
        print(decision.explain())
        where = _WHERE.get(request.question_source, request.question_source)
        print(f"instruction ({where}): {shown!r}")
    else:
        why = f"rule {decision.rule}" if decision.rule else f"score {decision.score:.3f}"
        print(f"{decision.route} {decision.model} ({why}, threshold {decision.threshold:.3f})")
    return 0
