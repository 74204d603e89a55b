"""The simulated models: context windows, prices, latency and recall parameters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, kw_only=True)
class SimModel:
    """One model the simulated provider serves.

    Prices are USD per token. Latency (before the global time scale): ``ttft_s`` plus
    ``input_s_per_token`` per prompt token before the first token, then ``output_s_per_token``
    per generated token. ``recall_half_load`` and ``recall_slope`` shape the recall curve
    (see ``sim.recall`` and CALIBRATION.md).
    """

    name: str
    context_window: int
    max_output_tokens: int
    input_cost_per_token: float
    output_cost_per_token: float
    ttft_s: float
    input_s_per_token: float
    output_s_per_token: float
    recall_max: float
    recall_half_load: float
    recall_slope: float
    # Hidden reasoning, billed as output tokens and reported in
    # ``completion_tokens_details.reasoning_tokens`` as OpenAI's reasoning models do: a fixed
    # amount per answer plus a share of the prompt, and more for an RLM root turn (planning
    # and writing code). This is what makes the RLM route cost more than a direct call on
    # short and mid-sized inputs, as in the paper's Table 1 (see CALIBRATION.md).
    reasoning_per_answer: int = 0
    reasoning_per_1k_prompt: float = 0.0
    reasoning_per_root_turn: int = 0
    # How the model behaves as an RLM root (``sim.personas``): "competent" writes the right
    # program every time; "frontier" and "coder" fail the way RLM(GPT-5) and
    # RLM(Qwen3-Coder) do, at calibrated rates.
    persona: str = "competent"

    def reasoning_tokens(self, prompt_tokens: int, *, root_turn: bool) -> int:
        """Hidden reasoning tokens spent on one response."""
        if root_turn:
            return self.reasoning_per_root_turn
        return self.reasoning_per_answer + int(self.reasoning_per_1k_prompt * prompt_tokens / 1000)

    def litellm_info(self) -> dict[str, Any]:
        """The entry ``litellm.register_model`` expects for this model."""
        return {
            "max_tokens": self.max_output_tokens,
            "max_input_tokens": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "input_cost_per_token": self.input_cost_per_token,
            "output_cost_per_token": self.output_cost_per_token,
            # Cached input is billed at a tenth, as for GPT-5; the simulator never caches.
            "cache_read_input_token_cost": self.input_cost_per_token / 10,
            "cache_creation_input_token_cost": self.input_cost_per_token,
            "litellm_provider": "openai",
            "mode": "chat",
            "supports_system_messages": True,
        }


_BASE_MODELS: tuple[SimModel, ...] = (
    # Frontier-like root/direct model, priced like GPT-5.
    SimModel(
        name="sim-large",
        context_window=272_000,
        max_output_tokens=128_000,
        input_cost_per_token=1.25e-6,
        output_cost_per_token=10e-6,
        ttft_s=0.6,
        input_s_per_token=2e-6,
        output_s_per_token=0.012,
        recall_max=0.98,
        recall_half_load=100_000,
        recall_slope=1.6,
        reasoning_per_answer=200,
        reasoning_per_1k_prompt=4.0,
        reasoning_per_root_turn=2_500,
    ),
    # Its mini sibling for sub-calls, priced like GPT-5-mini: faster, somewhat less recall.
    SimModel(
        name="sim-mini",
        context_window=272_000,
        max_output_tokens=128_000,
        input_cost_per_token=0.25e-6,
        output_cost_per_token=2e-6,
        ttft_s=0.35,
        input_s_per_token=1e-6,
        output_s_per_token=0.006,
        recall_max=0.985,
        recall_half_load=70_000,
        recall_slope=1.6,
        reasoning_per_answer=150,
        reasoning_per_1k_prompt=4.0,
        reasoning_per_root_turn=1_500,
    ),
    # A small-window direct model, for overflow and fallback tests.
    SimModel(
        name="sim-small",
        context_window=32_000,
        max_output_tokens=8_000,
        input_cost_per_token=0.15e-6,
        output_cost_per_token=0.6e-6,
        ttft_s=0.25,
        input_s_per_token=1e-6,
        output_s_per_token=0.005,
        recall_max=0.99,
        recall_half_load=50_000,
        recall_slope=1.6,
    ),
)
# Root personas (CALIBRATION.md, "Root personas"): sim-large's reading and prices with a
# GPT-5-like root behaviour, and a Qwen3-Coder-like root (priced like Qwen3-Coder-480B on
# common hosts, ~$0.45/M input and $1.80/M output; its recall is sim-large's).
_PERSONA_MODELS = (
    replace(_BASE_MODELS[0], name="sim-frontier", persona="frontier"),
    replace(
        _BASE_MODELS[0],
        name="sim-coder",
        persona="coder",
        context_window=262_000,
        input_cost_per_token=0.45e-6,
        output_cost_per_token=1.8e-6,
        reasoning_per_answer=0,
        reasoning_per_1k_prompt=0.0,
        reasoning_per_root_turn=600,
    ),
)
SIM_MODELS: dict[str, SimModel] = {m.name: m for m in (*_BASE_MODELS, *_PERSONA_MODELS)}


def register_sim_models() -> None:
    """Register the simulated models' windows and prices with litellm.

    Registered as ``openai/<name>`` so ``litellm.completion_cost(response)`` and
    ``litellm.get_model_info("openai/sim-large")`` return the declared figures.
    """
    import rlm_router.rlm_core.litellm_api as litellm_api

    litellm_api.register_models({f"openai/{m.name}": m.litellm_info() for m in SIM_MODELS.values()})
