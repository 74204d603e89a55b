"""``rlm-router policy check|calibrate|prior``: validate a policy file; tune its threshold;
rebuild the shipped prior classifier."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="check or calibrate a routing policy",
        description="Validate policy files and calibrate the classifier threshold.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a policy file (and its classifier)")
    check.add_argument("path", help="policy YAML")
    check.set_defaults(handler=run_check)
    calibrate = actions.add_parser(
        "calibrate",
        help="set the threshold so a target share of requests escalates",
        description="Score a sample of requests (JSONL: one request body per line, or "
        '{"request": body, "headers": {...}}) and set classifier.threshold to the score '
        "quantile that escalates the target share of the requests the classifier decides.",
    )
    calibrate.add_argument("--requests", required=True, help="JSONL file of requests")
    calibrate.add_argument("--escalation-rate", type=float, help="target share in [0, 1]")
    calibrate.add_argument("--config", help="policy YAML (default: the shipped policy)")
    calibrate.add_argument("--write", help="write the calibrated policy YAML here")
    calibrate.set_defaults(handler=run_calibrate)
    prior = actions.add_parser(
        "prior",
        help="rebuild the shipped prior classifier (policies/PRIOR.md)",
        description="Build the prior's synthetic data set, fit it and write the artifact.",
    )
    prior.add_argument("--out", help="artifact path (default: the shipped one)")
    prior.add_argument("--seed", type=int, default=0)
    prior.add_argument("--n", type=int, default=600, help="examples per task family")
    prior.set_defaults(handler=run_prior)


def run_check(args: argparse.Namespace) -> int:
    from rlm_router.policies import ArtifactError, PolicyError, load_policy
    from rlm_router.router._router import load_classifier

    try:
        policy = load_policy(args.path)
        classifier = load_classifier(policy.classifier)
    except (PolicyError, ArtifactError) as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {args.path} ({policy.version}/{classifier.version})")
    return 0


def run_prior(args: argparse.Namespace) -> int:
    from rlm_router.policies import prior
    from rlm_router.router.features import extract_body_features

    argv = ["--seed", str(args.seed), "--n", str(args.n)]
    if args.out:
        argv += ["--out", args.out]
    return prior.main(argv, extract=extract_body_features)


def _read_requests(path: str) -> list[tuple[dict[str, Any], dict[str, str] | None]]:
    requests = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
            if isinstance(item, dict) and "request" in item:
                requests.append((item["request"], item.get("headers")))
            else:
                requests.append((item, None))
    return requests


def run_calibrate(args: argparse.Namespace) -> int:
    from rlm_router.policies import PolicyError, calibrate_threshold
    from rlm_router.policies.calibrate import set_classifier_value
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH
    from rlm_router.router import InvalidRequest, Router

    try:
        router = Router.from_config(args.config)
        requests = _read_requests(args.requests)
    except (PolicyError, OSError, ValueError) as exc:
        print(f"rlm-router policy calibrate: {exc}", file=sys.stderr)
        return 2
    rate = args.escalation_rate
    if rate is None:
        rate = router.policy.calibration.target_escalation_rate
    if rate is None or not 0.0 <= rate <= 1.0:
        print(
            "rlm-router policy calibrate: --escalation-rate in [0, 1] is required", file=sys.stderr
        )
        return 2
    scores: list[float] = []
    ruled = 0
    for number, (body, headers) in enumerate(requests, 1):
        try:
            decision = router.decide(body, headers)
        except InvalidRequest as exc:
            print(f"rlm-router policy calibrate: request {number}: {exc}", file=sys.stderr)
            return 2
        if decision.rule is None:
            scores.append(decision.score)
        else:
            ruled += 1
    if not scores:
        print("rlm-router policy calibrate: every request was decided by a rule", file=sys.stderr)
        return 2
    threshold = calibrate_threshold(scores, rate)
    escalated = sum(score >= threshold for score in scores)
    achieved = escalated / len(scores)
    # One request is the finest step; beyond it, ties in the scores made the target unreachable.
    met = abs(achieved - rate) <= 1.0 / len(scores) + 1e-9
    print(
        json.dumps(
            {
                "threshold": round(threshold, 6),
                "target_escalation_rate": rate,
                "achieved_escalation_rate": achieved,
                "target_met": met,
                "requests": len(requests),
                "decided_by_rules": ruled,
                "previous_threshold": router.policy.classifier.threshold,
            }
        )
    )
    if not met:
        tied = max(Counter(scores).values())
        print(
            f"rlm-router policy calibrate: missed the target: {achieved:.0%} of the "
            f"{len(scores)} classifier-decided requests escalate at the nearest threshold, "
            f"{rate:.0%} was asked (up to {tied} requests share one score); nothing written",
            file=sys.stderr,
        )
        return 1
    if args.write:
        source = Path(args.config) if args.config else DEFAULT_POLICY_PATH
        text = set_classifier_value(
            source.read_text(encoding="utf-8"), "threshold", f"{threshold:.6f}"
        )
        spec = router.policy.classifier
        out = Path(args.write)
        if spec.artifact != "default" and not Path(spec.artifact).is_absolute():
            # Keep a relative artifact path pointing at the same file from the new location.
            text = set_classifier_value(text, "artifact", str(spec.artifact_path().resolve()))
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0
