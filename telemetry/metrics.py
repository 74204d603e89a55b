"""Metric instruments: GenAI client metrics and the router's own.

Instrument names follow OTel conventions (dots); a Prometheus scrape sees them sanitised, with
unit and ``_total`` suffixes (``rlm_router.cost`` in ``usd`` -> ``rlm_router_cost_usd_total``:
lowercase, as the OTel -> Prometheus convention writes units).
``PROMETHEUS_NAMES`` lists the series names the Grafana dashboard may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from opentelemetry.metrics import Meter, MeterProvider

from rlm_router.telemetry import semconv as sc

METER_NAME: Final = "rlm_router"

TOKEN_USAGE: Final = "gen_ai.client.token.usage"
OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
DECISIONS: Final = "rlm_router.decisions"
EXPLORATIONS: Final = "rlm_router.explorations"
REQUESTS: Final = "rlm_router.requests"
REQUEST_DURATION: Final = "rlm_router.request.duration"
COST: Final = "rlm_router.cost"
FALLBACKS: Final = "rlm_router.fallbacks"
RLM_ITERATIONS_METRIC: Final = "rlm_router.rlm.iterations"
RLM_SUB_CALLS_METRIC: Final = "rlm_router.rlm.sub_calls"
FEEDBACK_QUALITY: Final = "rlm_router.feedback.quality"
POLICY_RELOADS: Final = "rlm_router.policy.reloads"
JUDGE_GRADINGS: Final = "rlm_router.judge.gradings"
JUDGE_COST: Final = "rlm_router.judge.cost"

# Series names as Prometheus exposes them (histograms add _bucket/_sum/_count).
PROMETHEUS_NAMES: Final = {
    TOKEN_USAGE: "gen_ai_client_token_usage",
    OPERATION_DURATION: "gen_ai_client_operation_duration_seconds",
    DECISIONS: "rlm_router_decisions_total",
    EXPLORATIONS: "rlm_router_explorations_total",
    REQUESTS: "rlm_router_requests_total",
    REQUEST_DURATION: "rlm_router_request_duration_seconds",
    COST: "rlm_router_cost_usd_total",
    FALLBACKS: "rlm_router_fallbacks_total",
    RLM_ITERATIONS_METRIC: "rlm_router_rlm_iterations",
    RLM_SUB_CALLS_METRIC: "rlm_router_rlm_sub_calls",
    FEEDBACK_QUALITY: "rlm_router_feedback_quality",
}

# Bucket advice from the GenAI semantic conventions (gen_ai.client.token.usage: powers of 4
# from 1 to 67108864).
_TOKEN_BUCKETS: Final = tuple(4**k for k in range(14))
_DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
_COUNT_BUCKETS: Final = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
_QUALITY_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class ChatCallMeasurement:
    """One model call as the GenAI client metrics see it."""

    model: str
    provider: str | None
    duration_s: float
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_type: str | None = None
    inner: bool = False


class RouterMetrics:
    """The instruments, created once per meter provider; every method is cheap and thread-safe."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        meter: Meter = meter_provider.get_meter(METER_NAME)
        self._token_usage = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Tokens used by model calls.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._operation_duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="Duration of model calls.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._decisions = meter.create_counter(
            DECISIONS, unit="{decision}", description="Routing decisions by route and rule."
        )
        self._explorations = meter.create_counter(
            EXPLORATIONS, unit="{decision}", description="Decisions that explored the other route."
        )
        self._requests = meter.create_counter(
            REQUESTS, unit="{request}", description="Requests by the route that served them."
        )
        self._request_duration = meter.create_histogram(
            REQUEST_DURATION,
            unit="s",
            description="End-to-end request latency by route served.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._cost = meter.create_counter(
            # "usd", not "USD": the Prometheus exporter appends the unit as written, and
            # Prometheus names are lowercase (rlm_router_cost_usd_total).
            COST,
            unit="usd",
            description="Model cost of requests by route served (USD).",
        )
        self._fallbacks = meter.create_counter(
            FALLBACKS, unit="{fallback}", description="Fallbacks between routes."
        )
        self._rlm_iterations = meter.create_histogram(
            RLM_ITERATIONS_METRIC,
            unit="{iteration}",
            description="RLM iterations per escalated request.",
            explicit_bucket_boundaries_advisory=_COUNT_BUCKETS,
        )
        self._rlm_sub_calls = meter.create_histogram(
            RLM_SUB_CALLS_METRIC,
            unit="{call}",
            description="RLM sub-calls per escalated request.",
            explicit_bucket_boundaries_advisory=_COUNT_BUCKETS,
        )
        self._policy_reloads = meter.create_counter(
            POLICY_RELOADS,
            unit="{reload}",
            description="Policy reloads in a running proxy by outcome (ok, failed) and trigger.",
        )
        self._judge_gradings = meter.create_counter(
            JUDGE_GRADINGS,
            unit="{grading}",
            description="The judge's gradings by outcome (graded, failed, over_cap).",
        )
        self._judge_cost = meter.create_counter(
            JUDGE_COST, unit="usd", description="What the judge's own model calls cost (USD)."
        )
        self._feedback_quality = meter.create_histogram(
            FEEDBACK_QUALITY,
            unit="1",
            description="Outcome quality reported as feedback.",
            explicit_bucket_boundaries_advisory=_QUALITY_BUCKETS,
        )

    def chat_call(self, call: ChatCallMeasurement) -> None:
        """Record ``gen_ai.client.*`` for one model call."""
        attributes = sc.drop_unset(
            {
                sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT,
                sc.GEN_AI_PROVIDER_NAME: call.provider,
                sc.GEN_AI_REQUEST_MODEL: call.model,
                sc.GEN_AI_RESPONSE_MODEL: call.response_model,
                sc.ERROR_TYPE: call.error_type,
                sc.INNER: call.inner,
            }
        )
        self._operation_duration.record(call.duration_s, attributes)
        if call.input_tokens is not None:
            token_attrs = {**attributes, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT}
            self._token_usage.record(call.input_tokens, token_attrs)
        if call.output_tokens is not None:
            token_attrs = {**attributes, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT}
            self._token_usage.record(call.output_tokens, token_attrs)

    def decision(self, *, route: str, rule: str | None, exploration: bool) -> None:
        """Count one routing decision (rule ``classifier`` when no YAML rule fired)."""
        self._decisions.add(
            1,
            {
                sc.DECISION_ROUTE: route,
                sc.DECISION_RULE: rule or sc.RULE_CLASSIFIER,
                sc.DECISION_EXPLORATION: exploration,
            },
        )
        if exploration:
            self._explorations.add(1, {sc.DECISION_ROUTE: route})

    def request(
        self,
        *,
        route_served: str,
        fallback: str,
        duration_s: float,
        cost_usd: float | None,
        error_type: str | None,
        rlm_iterations: int | None,
        rlm_sub_calls: int | None,
    ) -> None:
        """Record one finished request."""
        attributes = sc.drop_unset(
            {sc.ROUTE_SERVED: route_served, sc.FALLBACK: fallback, sc.ERROR_TYPE: error_type}
        )
        self._requests.add(1, attributes)
        self._request_duration.record(duration_s, attributes)
        if cost_usd:
            self._cost.add(cost_usd, {sc.ROUTE_SERVED: route_served})
        if fallback != sc.FALLBACK_NONE:
            self._fallbacks.add(1, {sc.FALLBACK: fallback})
        if route_served == sc.ROUTE_RLM:
            if rlm_iterations is not None:
                self._rlm_iterations.record(rlm_iterations, {sc.ROUTE_SERVED: route_served})
            if rlm_sub_calls is not None:
                self._rlm_sub_calls.record(rlm_sub_calls, {sc.ROUTE_SERVED: route_served})

    def policy_reload(self, *, ok: bool, trigger: str) -> None:
        """Count one policy reload attempt (the last good policy serves on after a failure)."""
        self._policy_reloads.add(1, {"outcome": "ok" if ok else "failed", "trigger": trigger})

    def judge(self, *, outcome: str, cost_usd: float = 0.0) -> None:
        """Count one of the judge's gradings and add what it cost."""
        self._judge_gradings.add(1, {"outcome": outcome})
        if cost_usd > 0:
            self._judge_cost.add(cost_usd)

    def feedback(self, quality: float) -> None:
        """Record a quality score reported for a decision."""
        self._feedback_quality.record(quality)
