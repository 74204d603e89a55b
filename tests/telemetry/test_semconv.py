"""Attribute builders: unset values are dropped, names follow the conventions."""

from __future__ import annotations

from rlm_router.telemetry import semconv as sc
from tests.telemetry.telemetry_support import SampleDecision, SampleFeatures


def test_drop_unset_keeps_falsy_values() -> None:
    assert sc.drop_unset({"a": None, "b": 0, "c": False, "d": ""}) == {"b": 0, "c": False, "d": ""}


def test_chat_attributes() -> None:
    assert sc.chat_span_name("openai/sim-large") == "chat openai/sim-large"
    assert sc.chat_request_attributes(model="openai/sim-large") == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "openai/sim-large",
    }
    assert sc.GEN_AI_PROVIDER_NAME not in sc.chat_request_attributes(model="gpt-5")
    inner = sc.chat_request_attributes(model="m", provider="azure", inner=True, max_tokens=5)
    assert inner[sc.INNER] is True and inner[sc.GEN_AI_PROVIDER_NAME] == "azure"
    assert sc.chat_response_attributes() == {}
    assert sc.chat_response_attributes(input_tokens=0, finish_reasons=[]) == {
        sc.GEN_AI_USAGE_INPUT_TOKENS: 0
    }


def test_decision_attributes_drop_unknowns_and_non_numeric_features() -> None:
    decision = SampleDecision(
        score=None,
        threshold=None,
        propensity=None,
        policy_version=None,
        features=SampleFeatures({"n": 3, "ok": True, "tags": ["x"]}),  # type: ignore[dict-item]
    )
    attrs = sc.decision_attributes(decision)
    assert attrs == {
        sc.DECISION_ID: "d-1",
        sc.DECISION_ROUTE: "llm",
        sc.DECISION_EXPLORATION: False,
        "rlm_router.feature.n": 3,
        "rlm_router.feature.ok": True,
    }


def test_error_type_is_the_class_name() -> None:
    class ContextWindowExceededError(Exception):
        pass

    assert sc.error_type_of(ContextWindowExceededError()) == "ContextWindowExceededError"
    assert sc.error_type_of(TimeoutError()) == "TimeoutError"
