"""Route groups with names litellm does not know: the RLM engine still checks each call's
window and worst-case cost before sending it, in the proxy as in the library."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

import rlm_router.rlm_core.litellm_api as litellm_api
from benchmarks.proxy_bench import ProxyProcess
from benchmarks.scale_bench import proxy_config
from rlm_router.policies.loader import DEFAULT_POLICY_PATH
from rlm_router.router.plugin.config import ServiceConfig
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import AUTH


def test_route_groups_unknown_to_litellm_are_registered_with_their_prices() -> None:
    data = {
        "model_list": [
            {
                "model_name": "grp-test-main",
                "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:1/v1"},
            },
            {
                "model_name": "grp-test-cheap",
                "litellm_params": {
                    "model": "openai/not-a-known-model",
                    "api_base": "http://127.0.0.1:1/v1",
                    "input_cost_per_token": 2e-7,
                    "output_cost_per_token": 8e-7,
                },
                "model_info": {"max_input_tokens": 100_000},
            },
            {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}},
        ],
        "rlm_router": {
            "models": {
                "direct": "grp-test-main",
                "rlm_root": "gpt-4o-mini",
                "rlm_sub": "grp-test-cheap",
            }
        },
    }
    assert litellm_api.token_cost("grp-test-cheap", 1_000_000, 0) == 0.0  # unknown: free
    config = ServiceConfig.from_mapping(data, path=None)
    # gpt-4o-mini is a name litellm knows: left alone. grp-test-main takes gpt-4o's prices.
    assert sorted(config.register_groups()) == ["grp-test-cheap", "grp-test-main"]
    assert litellm_api.token_cost("grp-test-cheap", 1_000_000, 1_000_000) == pytest.approx(1.0)
    assert litellm_api.context_window("grp-test-cheap") == 100_000
    main = litellm_api.token_cost("grp-test-main", 1_000_000, 0)
    assert main > 0
    assert main == pytest.approx(litellm_api.token_cost("openai/gpt-4o", 1_000_000, 0))


def test_a_group_named_after_its_model_keeps_the_deployments_own_price_entry() -> None:
    # litellm files a registration of "openai/<name>" under "<name>" when that key came
    # first; its router registers each deployment (and, with custom pricing, again on every
    # request), so "openai/<name>" must exist on its own or each request's cost lookups miss.
    import litellm

    name = "grp-test-self-named"
    data = {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{name}",
                    "api_base": "http://127.0.0.1:1/v1",
                    "input_cost_per_token": 3e-7,
                    "output_cost_per_token": 9e-7,
                },
            }
        ],
        "rlm_router": {"models": {"direct": name, "rlm_root": name, "rlm_sub": name}},
    }
    assert ServiceConfig.from_mapping(data, path=None).register_groups() == [name]
    litellm.register_model(
        {f"openai/{name}": {"litellm_provider": "openai", "mode": "chat"}},
        persist_across_reloads=False,
    )
    assert f"openai/{name}" in litellm.model_cost
    assert litellm_api.token_cost(name, 1_000_000, 1_000_000) == pytest.approx(1.2)


@pytest.mark.slow
@pytest.mark.server
def test_an_rlm_run_over_its_cost_budget_is_refused_in_time_and_answers(
    sim_server: SimServer, tmp_path: Path
) -> None:
    # The coder root reads 300K tokens (over the direct window: no fallback), ~$0.44 in
    # all (ask for it in full). Every batch is checked against its worst case before it is
    # sent, so with $0.30 the run is refused in time and answers from what it has. When the
    # proxy's group names had no prices, nothing was refused: the run overspent into a bare
    # max_cost stop and the proxy answered 502 with no answer.
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    policy["budgets"]["max_cost_usd"] = 0.30
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    task = generate("oolong", n_tokens=300_000, seed=0, kind="most_common")
    config = proxy_config("sim-coder", sim_server.base_url, policy=path)
    with ProxyProcess(config, env={"RLM_ROUTER_TRACES_FILE": str(tmp_path / "t.jsonl")}) as proxy:
        reply = httpx.post(
            f"{proxy.base_url}/v1/chat/completions",
            json={"model": "auto", "messages": task.messages()},
            headers=AUTH,
            timeout=600,
        )
    assert reply.status_code == 200, reply.text[:300]
    assert reply.headers["x-rlm-router-route"] == "rlm"
    assert float(reply.headers["x-litellm-response-cost"]) <= 0.30
    assert reply.json()["choices"][0]["message"]["content"].strip()
