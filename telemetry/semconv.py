"""Attribute and span names: the GenAI semantic conventions and rlm-router's own.

Every part of the project (router, engine observer, trainer, dashboard) names telemetry
through these constants, so a rename happens in one place. The builders return plain
attribute dicts with unset values dropped, as OpenTelemetry's OpenAI instrumentation does:
an attribute that is absent means "unknown", never "zero" or "empty".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Final, Protocol, TypeAlias

from rlm_router.rlm_core.errors import ProviderError

# One attribute value as OpenTelemetry accepts it.
AttributeValue: TypeAlias = str | bool | int | float | Sequence[str]
Attributes: TypeAlias = dict[str, AttributeValue]

# --- GenAI semantic conventions -------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

OPERATION_CHAT: Final = "chat"
OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"

# The opt-in switch for recording message content, shared with OTel's GenAI instrumentations.
CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# --- rlm-router: span names ---------------------------------------------------------------
SPAN_REQUEST: Final = "rlm_router.request"
SPAN_DECIDE: Final = "rlm_router.decide"
SPAN_RLM_RUN: Final = "invoke_agent rlm"
SPAN_RLM_ITERATION: Final = "rlm.iteration"
SPAN_REPL: Final = "execute_tool repl"
SPAN_FEEDBACK: Final = "rlm_router.feedback"
EVENT_FALLBACK: Final = "rlm_router.fallback"
AGENT_NAME_RLM: Final = "rlm"
TOOL_NAME_REPL: Final = "repl"

# --- rlm-router: request (on rlm_router.request, set when it starts) -----------------------
REQUEST_STREAM: Final = "rlm_router.request.stream"

# --- rlm-router: decision (on rlm_router.decide) ------------------------------------------
DECISION_ID: Final = "rlm_router.decision.id"
DECISION_ROUTE: Final = "rlm_router.decision.route"
DECISION_SCORE: Final = "rlm_router.decision.score"
DECISION_THRESHOLD: Final = "rlm_router.decision.threshold"
DECISION_RULE: Final = "rlm_router.decision.rule"
DECISION_POLICY_VERSION: Final = "rlm_router.decision.policy_version"
DECISION_EXPLORATION: Final = "rlm_router.decision.exploration"
DECISION_PROPENSITY: Final = "rlm_router.decision.propensity"
FEATURE_PREFIX: Final = "rlm_router.feature."

# --- rlm-router: outcome (on rlm_router.request) ------------------------------------------
ROUTE_SERVED: Final = "rlm_router.route.served"
FALLBACK: Final = "rlm_router.fallback"
OUTCOME_COST_USD: Final = "rlm_router.outcome.cost_usd"
OUTCOME_LATENCY_MS: Final = "rlm_router.outcome.latency_ms"
OUTCOME_INPUT_TOKENS: Final = "rlm_router.outcome.input_tokens"
OUTCOME_OUTPUT_TOKENS: Final = "rlm_router.outcome.output_tokens"
OUTCOME_STOPPED_REASON: Final = "rlm_router.outcome.stopped_reason"
OUTCOME_ERROR_TYPE: Final = "rlm_router.outcome.error_type"
OUTCOME_QUALITY: Final = "rlm_router.outcome.quality"
RLM_ITERATIONS: Final = "rlm_router.rlm.iterations"
RLM_SUB_CALLS: Final = "rlm_router.rlm.sub_calls"

# --- rlm-router: model calls and the RLM run ------------------------------------------------
COST_USD: Final = "rlm_router.cost_usd"
INNER: Final = "rlm_router.inner"
RLM_DEPTH: Final = "rlm_router.rlm.depth"
RLM_ROLE: Final = "rlm_router.rlm.role"
RLM_ITERATION_INDEX: Final = "rlm_router.rlm.iteration"
REPL_DURATION_MS: Final = "rlm_router.repl.duration_ms"
REPL_ERROR: Final = "rlm_router.repl.error"
REPL_TRUNCATED: Final = "rlm_router.repl.truncated"
REPL_LIMIT: Final = "rlm_router.repl.limit"
FALLBACK_FROM: Final = "rlm_router.fallback.from"
FALLBACK_TO: Final = "rlm_router.fallback.to"
FALLBACK_REASON: Final = "rlm_router.fallback.reason"
FEEDBACK_SOURCE: Final = "rlm_router.feedback.source"

ROUTE_LLM: Final = "llm"
ROUTE_RLM: Final = "rlm"
FALLBACK_NONE: Final = "none"
FALLBACK_RLM_TO_LLM: Final = "rlm_to_llm"
FALLBACK_LLM_TO_RLM: Final = "llm_to_rlm"
# The value of the decision-rule metric attribute when no YAML rule fired.
RULE_CLASSIFIER: Final = "classifier"


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether message content may be recorded: off unless the standard switch is "true"."""
    env = os.environ if environ is None else environ
    return env.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def drop_unset(attributes: Mapping[str, AttributeValue | None]) -> Attributes:
    """The attributes whose value is set (not None)."""
    return {key: value for key, value in attributes.items() if value is not None}


def provider_from_model(model: str) -> str | None:
    """litellm's provider prefix of a model name (``openai/gpt-5`` -> ``openai``), if any."""
    provider, sep, _ = model.partition("/")
    return provider if sep and provider else None


def chat_span_name(model: str) -> str:
    """GenAI span name: ``{operation} {model}``."""
    return f"{OPERATION_CHAT} {model}"


def chat_request_attributes(
    *,
    model: str,
    provider: str | None = None,
    inner: bool = False,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> Attributes:
    """Attributes known when a chat call starts."""
    return drop_unset(
        {
            GEN_AI_OPERATION_NAME: OPERATION_CHAT,
            GEN_AI_PROVIDER_NAME: provider or provider_from_model(model),
            GEN_AI_REQUEST_MODEL: model,
            GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
            GEN_AI_REQUEST_TEMPERATURE: temperature,
            INNER: True if inner else None,
        }
    )


def chat_response_attributes(
    *,
    response_model: str | None = None,
    response_id: str | None = None,
    finish_reasons: Sequence[str] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost_usd: float | None = None,
) -> Attributes:
    """Attributes known when a chat call has returned."""
    return drop_unset(
        {
            GEN_AI_RESPONSE_MODEL: response_model,
            GEN_AI_RESPONSE_ID: response_id,
            GEN_AI_RESPONSE_FINISH_REASONS: list(finish_reasons) if finish_reasons else None,
            GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            COST_USD: cost_usd,
        }
    )


def messages_attribute(messages: Sequence[Mapping[str, object]]) -> str:
    """Chat messages as the JSON string GenAI conventions put in ``gen_ai.*.messages``."""
    return json.dumps(list(messages), ensure_ascii=False, default=str)


class FeaturesLike(Protocol):
    """What telemetry needs of ``policies.features.RequestFeatures``."""

    def as_dict(self) -> Mapping[str, object]: ...


class DecisionLike(Protocol):
    """What telemetry needs of a routing decision (``policies.Decision``).

    A Protocol, so telemetry observes the policy without importing it.
    """

    @property
    def id(self) -> str: ...
    @property
    def route(self) -> str: ...
    @property
    def score(self) -> float | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def policy_version(self) -> str | None: ...
    @property
    def exploration(self) -> bool: ...
    @property
    def propensity(self) -> float | None: ...
    @property
    def features(self) -> FeaturesLike | None: ...


def feature_attributes(features: Mapping[str, object]) -> Attributes:
    """``rlm_router.feature.<name>`` for every plain-number (or bool/str) feature."""
    out: Attributes = {}
    for name, value in features.items():
        if isinstance(value, bool | int | float | str):
            out[FEATURE_PREFIX + name] = value
    return out


def decision_attributes(decision: DecisionLike) -> Attributes:
    """Attributes of the ``rlm_router.decide`` span."""
    attributes = drop_unset(
        {
            DECISION_ID: decision.id,
            DECISION_ROUTE: decision.route,
            DECISION_SCORE: _float_or_none(decision.score),
            DECISION_THRESHOLD: _float_or_none(decision.threshold),
            DECISION_RULE: decision.rule,
            DECISION_POLICY_VERSION: decision.policy_version,
            DECISION_EXPLORATION: bool(decision.exploration),
            DECISION_PROPENSITY: _float_or_none(decision.propensity),
        }
    )
    if decision.features is not None:
        attributes.update(feature_attributes(decision.features.as_dict()))
    return attributes


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def error_type_of(exc: BaseException) -> str:
    """``error.type`` for an exception: its class name, as OTel's GenAI instrumentations use.

    A provider error mapped to our tree (``rlm_core.errors.ProviderError``) names the
    provider's own class (``error_type``), so spans read the same whichever side raised it.
    """
    if isinstance(exc, ProviderError):
        return exc.error_type
    return type(exc).__name__
