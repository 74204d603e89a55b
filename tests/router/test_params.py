"""``check_params``: OpenAI parameters LiteLLM would pass through are checked before routing."""

from __future__ import annotations

import pytest

from rlm_router.router import Router
from rlm_router.router.params import check_params
from rlm_router.router.request import InvalidRequest


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"temperature": "hot"}, "'temperature' must be a number, got str 'hot'"),
        ({"temperature": float("nan")}, "between 0 and 2"),
        ({"n": 1000}, "between 1 and 128"),
        ({"n": True}, "'n' must be an integer"),
        ({"stream": True, "stream_options": "x"}, "'stream_options' must be an object"),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, "include_usage"),
        ({"metadata": ["a"]}, "'metadata' must be an object"),
        ({"logit_bias": 3}, "'logit_bias' must be an object"),
    ],
)
def test_malformed_parameters_name_the_parameter(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")):
        check_params(body)


def test_well_formed_and_unknown_parameters_pass() -> None:
    check_params(
        {
            "temperature": 0, "top_p": 1.0, "n": 2, "stop": ["a"], "max_tokens": 5, "seed": 1,
            "stream": True, "stream_options": {"include_usage": True}, "metadata": {"a": 1},
            "tool_choice": "auto", "tools": [{"type": "function"}], "temperature_x": "hot",
            "user": "u", "presence_penalty": None,
        }
    )  # fmt: skip


async def test_the_library_rejects_them_before_any_call() -> None:
    router = Router.from_config(None)
    with pytest.raises(InvalidRequest, match="'n' must be an integer between 1 and 128"):
        await router.acompletion(model="auto", messages=[{"role": "user", "content": "hi"}], n=1000)
