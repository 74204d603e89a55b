"""Telemetry through the real LiteLLM proxy, with LiteLLM's own ``otel`` callback enabled next
to ours, both exporting OTLP/HTTP to one receiver on loopback (as to a user's Collector).

- A direct-route request has its ``chat {model}`` span with tokens, and ``gen_ai.client.*``
  metrics; a failed one carries ``error.type`` on both (the "model call errors" panel).
- Our spans nest in time, on the proxy's very first request too.
- Nothing from the RLM engine's inner calls lands on LiteLLM's own spans of the request.

One proxy serves the module; its first request is the direct one of the first test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, plugin_config
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import AUTH, router_yaml
from tests.telemetry.otlp_receiver import OTLPReceiver, ReceivedSpan

OURS = "rlm_router"  # our instrumentation scope
DECISION_ID = "rlm_router.decision.id"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def proxy(
    sim_server: SimServer, receiver: OTLPReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    # The shipped policy plus a judge grading every answer (the simulated sim-mini).
    policy = tmp_path_factory.mktemp("judged") / "policy.yaml"
    policy.write_text(
        DEFAULT_POLICY_PATH.read_text()
        + "\njudge:\n"
        + f'  model: {{model: openai/sim-mini, api_base: "{sim_server.base_url}", '
        + "api_key_env: SIM_KEY}\n  sample_rate: 1.0\n"
    )
    config = plugin_config(sim_server.base_url, policy=str(policy))
    config["litellm_settings"]["callbacks"].insert(0, "otel")
    env = {
        # Read by LiteLLM's otel callback and by our Telemetry.from_env alike.
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "SIM_KEY": "sk-sim",
    }
    with ProxyProcess(config, env=env) as process:
        yield process


@pytest.fixture
def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key=MASTER_KEY, max_retries=0)


def _trace_of(receiver: OTLPReceiver, decision_id: str, *, names: set[str]) -> list[ReceivedSpan]:
    """All spans (ours and LiteLLM's) of the request, once the named spans of ours arrived."""

    def ours(rx: OTLPReceiver) -> list[ReceivedSpan]:
        return [s for s in rx.spans if s.attributes.get(DECISION_ID) == decision_id]

    def arrived(rx: OTLPReceiver) -> bool:
        found = ours(rx)
        if not found:
            return False
        trace_id = found[0].trace_id
        have = {s.name for s in rx.spans if s.trace_id == trace_id and s.scope == OURS}
        return names <= have

    assert receiver.wait_for(arrived), f"spans {sorted(names)} of {decision_id} never arrived"
    trace_id = ours(receiver)[0].trace_id
    return [s for s in receiver.spans if s.trace_id == trace_id]


def _assert_nested(child: ReceivedSpan, parent: ReceivedSpan) -> None:
    assert child.parent_span_id == parent.span_id, (child.name, parent.name)
    assert parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns, (
        f"{child.name} [{child.start_ns}, {child.end_ns}] is not inside "
        f"{parent.name} [{parent.start_ns}, {parent.end_ns}]"
    )


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and s.scope == OURS]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


@pytest.mark.server
def test_a_direct_request_has_its_chat_span_tokens_and_metrics(
    client: openai.OpenAI, receiver: OTLPReceiver
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=generate("qa", seed=3).messages(),  # type: ignore[arg-type]
    )
    assert raw.headers["x-rlm-router-route"] == "llm"
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens > 0
    decision_id = raw.headers["x-rlm-router-decision-id"]
    spans = _trace_of(
        receiver, decision_id, names={"rlm_router.request", "rlm_router.decide", "chat sim-large"}
    )
    request = _one(spans, "rlm_router.request")
    chat = _one(spans, "chat sim-large")
    assert chat.kind == 3  # CLIENT
    assert chat.attributes["gen_ai.request.model"] == "sim-large"
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert chat.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert "rlm_router.inner" not in chat.attributes
    # This is the proxy's first request: deciding included warm-up work, and still every
    # span lies inside its parent, the request span inside the one LiteLLM's server opened.
    _assert_nested(_one(spans, "rlm_router.decide"), request)
    _assert_nested(chat, request)
    # LiteLLM >= 1.108 exports its server span (1.106 does not): when it does, ours is inside.
    for parent in [s for s in spans if s.span_id == request.parent_span_id]:
        _assert_nested(request, parent)

    def chat_metrics(rx: OTLPReceiver) -> bool:
        names = {
            p.metric
            for p in rx.points
            if p.scope == OURS
            and p.attributes.get("gen_ai.request.model") == "sim-large"
            and p.count > 0
        }
        return {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names

    assert receiver.wait_for(chat_metrics), "no gen_ai.client.* metrics for the direct call"
    # The policy's judge graded the answer: a feedback report no app sent.
    assert receiver.wait_for(
        lambda rx: any(
            s.name == "rlm_router.feedback"
            and s.attributes.get(DECISION_ID) == decision_id
            and s.attributes.get("rlm_router.feedback.source") == "judge"
            for s in rx.spans
        )
    ), "the judge's grade of the direct answer never arrived"


@pytest.mark.server
def test_a_failed_direct_request_reports_error_type_on_span_and_metric(
    client: openai.OpenAI, receiver: OTLPReceiver, sim_faults: str
) -> None:
    httpx.post(sim_faults, json={"model": "sim-large", "fault": "500", "count": 20})
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="auto",
            messages=generate("qa", seed=5).messages(),  # type: ignore[arg-type]
        )
    httpx.delete(sim_faults)
    decision_id = caught.value.response.headers.get("x-rlm-router-decision-id")

    def failed_chat(rx: OTLPReceiver) -> list[ReceivedSpan]:
        return [
            s
            for s in rx.spans
            if s.scope == OURS and s.name == "chat sim-large" and "error.type" in s.attributes
        ]

    assert receiver.wait_for(lambda rx: bool(failed_chat(rx))), "no failed chat span"
    chat = failed_chat(receiver)[-1]
    assert chat.status_code == 2  # ERROR
    # The request span ends after its chat span, so it may arrive in a later export batch.
    receiver.wait_for(lambda rx: any(s.span_id == chat.parent_span_id for s in rx.spans))
    request = [s for s in receiver.spans if s.span_id == chat.parent_span_id]
    assert request and request[0].name == "rlm_router.request"
    if decision_id is not None:
        assert request[0].attributes[DECISION_ID] == decision_id
    _assert_nested(chat, request[0])

    def error_metric(rx: OTLPReceiver) -> bool:
        return any(
            p.metric == "gen_ai.client.operation.duration"
            and p.attributes.get("gen_ai.request.model") == "sim-large"
            and p.attributes.get("error.type") == chat.attributes["error.type"]
            for p in rx.points
        )

    assert receiver.wait_for(error_metric), "the failed call's duration metric has no error.type"


def _descends_from_ours(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> bool:
    seen: set[str] = set()
    parent = by_id.get(span.parent_span_id)
    while parent is not None and parent.span_id not in seen:
        if parent.scope == OURS:
            return True
        seen.add(parent.span_id)
        parent = by_id.get(parent.parent_span_id)
    return False


@pytest.mark.server
def test_inner_rlm_calls_leave_litellms_own_spans_alone(
    client: openai.OpenAI, receiver: OTLPReceiver
) -> None:
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    assert raw.headers["x-rlm-router-route"] == "rlm"
    usage = raw.parse().usage
    assert usage is not None
    decision_id = raw.headers["x-rlm-router-decision-id"]
    spans = _trace_of(receiver, decision_id, names={"rlm_router.request", "invoke_agent rlm"})
    time.sleep(1.0)  # LiteLLM logs the outer call last, after its inner calls
    spans = [s for s in receiver.spans if s.trace_id == spans[0].trace_id]
    by_id = {s.span_id: s for s in spans}
    theirs = [s for s in spans if s.scope != OURS]
    # LiteLLM logged each inner call (the engine's calls to sim-large / sim-mini)...
    inner_logs = [
        s
        for s in theirs
        if s.attributes.get("llm.openai.model") in ("sim-large", "sim-mini")
        or s.attributes.get("gen_ai.request.model") in ("sim-large", "sim-mini")
    ]
    assert inner_logs, "LiteLLM's otel callback logged no inner call (is it enabled?)"
    # ...under our spans, never onto or under its own spans of the outer request.
    stray = [s.name for s in inner_logs if not _descends_from_ours(s, by_id)]
    assert not stray, f"inner calls logged outside our span tree: {stray}"
    # LiteLLM's own spans of the outer request (its server spans are exported from 1.108 on).
    own = [s for s in theirs if not _descends_from_ours(s, by_id)]
    for span in own:
        for key, value in span.attributes.items():
            if key in ("gen_ai.request.max_tokens", "llm.openai.messages"):
                raise AssertionError(f"{span.name} carries an inner call's {key}: {value}")
            if key == "metadata.usage_object" and value:
                # Only the outer request's own usage (the whole RLM run) may appear here.
                assert f"'prompt_tokens': {usage.prompt_tokens}" in str(value), (span.name, value)
            if key == "gen_ai.usage.input_tokens":
                assert value == usage.prompt_tokens, (span.name, key, value)


@pytest.mark.server
def test_feedback_without_a_content_type_is_recorded_and_an_unknown_id_is_404(
    client: openai.OpenAI, proxy: ProxyProcess, receiver: OTLPReceiver
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=generate("qa", seed=6).messages(),  # type: ignore[arg-type]
    )
    decision_id = raw.headers["x-rlm-router-decision-id"]
    url = f"{proxy.base_url}/rlm-router/feedback"
    body = f'{{"decision_id": "{decision_id}", "quality": 0.5}}'.encode()
    # As `curl -d` or a bare HTTP client sends it: no Content-Type, or a form one.
    for content_type in (None, "application/x-www-form-urlencoded", "text/plain"):
        headers = dict(AUTH) if content_type is None else {**AUTH, "Content-Type": content_type}
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == 200, (content_type, answer.text)
        assert answer.json()["decision_id"] == decision_id
    unknown = httpx.post(url, json={"decision_id": "no-such-decision", "quality": 1}, headers=AUTH)
    assert unknown.status_code == 404, unknown.text
    assert "no-such-decision" in unknown.json()["error"]["message"]
    # Reports are spans too: this proxy exports them over OTLP with the rest.
    assert receiver.wait_for(
        lambda rx: any(
            s.name == "rlm_router.feedback" and s.attributes.get(DECISION_ID) == decision_id
            for s in rx.spans
        )
    )


@pytest.mark.server
def test_the_virtual_model_is_listed_in_v1_models(client: openai.OpenAI) -> None:
    names = {model.id for model in client.models.list()}
    assert "auto" in names, sorted(names)
    assert {"sim-large", "sim-mini"} <= names


# ── one shape for `models` (no server) ──


def test_models_take_the_policy_shape_and_the_old_one_is_deprecated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rlm_router.router.plugin.config import ServiceConfig, ServiceConfigError

    new = ServiceConfig.load(router_yaml(tmp_path, "  models:\n    direct: {model: gpt-main}\n"))
    assert new.direct == "gpt-main" and not caplog.records
    assert new.section()["models"] == {"direct": {"model": "gpt-main"}}
    old_path = router_yaml(tmp_path, "  models:\n    direct: gpt-main\n")
    with caplog.at_level("WARNING", logger="rlm_router.router.plugin"):
        old = ServiceConfig.load(old_path)
    assert old.direct == "gpt-main"
    (warning,) = caplog.records
    assert warning.getMessage().startswith(f"{old_path}:6: 'rlm_router.models.direct: gpt-main'")
    assert "deprecated" in warning.getMessage()
    bad = router_yaml(
        tmp_path, "  models:\n    direct:\n      model: gpt-main\n      api_base: x\n"
    )
    with pytest.raises(ServiceConfigError, match=rf"^{bad}:6: 'rlm_router.models.direct' must"):
        ServiceConfig.load(bad)
    missing = router_yaml(tmp_path, "  models:\n    direct:\n      model: nope\n")
    with pytest.raises(ServiceConfigError, match=rf"^{missing}:7: 'rlm_router.models.direct'"):
        ServiceConfig.load(missing)
