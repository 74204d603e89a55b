"""The plugin's one YAML file (``router.plugin.config``): wiring into an existing LiteLLM
config, errors that name the file, line and key, and each model group's window. No server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.proxy_bench import sim_model_list
from rlm_router.router.plugin.config import (
    HOOK_PATH,
    PROVIDER_PATH,
    ServiceConfig,
    ServiceConfigError,
)
from tests.router.proxy_harness import router_yaml


def test_proxy_config_wires_the_plugin_into_an_existing_litellm_config(tmp_path: Path) -> None:
    existing = tmp_path / "litellm.yaml"
    existing.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {"model_name": "gpt-main", "litellm_params": {"model": "openai/gpt-4o"}},
                    {"model_name": "gpt-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}},
                ],
                "litellm_settings": {"callbacks": ["otel"]},
            }
        )
    )
    router_yaml = tmp_path / "router.yaml"
    router_yaml.write_text(
        yaml.safe_dump(
            {
                "rlm_router": {
                    "litellm_config": "litellm.yaml",
                    "policy": "policy.yaml",
                    "models": {"direct": "gpt-main", "rlm_root": "gpt-main", "rlm_sub": "gpt-mini"},
                }
            }
        )
    )
    config = ServiceConfig.load(router_yaml)
    proxy = config.proxy_config()
    assert proxy["litellm_settings"]["callbacks"] == ["otel", HOOK_PATH]
    assert proxy["litellm_settings"]["custom_provider_map"] == [
        {"provider": "rlm", "custom_handler": PROVIDER_PATH}
    ]
    names = [m["model_name"] for m in proxy["model_list"]]
    assert names == ["gpt-main", "gpt-mini", "rlm/default"]
    assert proxy["rlm_router"]["policy"] == str(tmp_path / "policy.yaml")
    # Wiring twice changes nothing.
    again = ServiceConfig.from_mapping(proxy, path=router_yaml).proxy_config()
    assert again["litellm_settings"] == proxy["litellm_settings"]
    assert [m["model_name"] for m in again["model_list"]] == names


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"models": {"direct": "nope"}}, "not a model_name in model_list"),
        ({"virtual_models": ["gpt-main"]}, "also model_list names"),
        ({"rlm_name": "a/b"}, "without '/'"),
        ({"polcy": "x.yaml"}, "unknown key"),
    ],
)
def test_service_config_errors_name_the_key(section: dict[str, Any], message: str) -> None:
    data = {
        "model_list": [{"model_name": "gpt-main", "litellm_params": {"model": "openai/gpt-4o"}}],
        "rlm_router": section,
    }
    with pytest.raises(ServiceConfigError, match=message):
        ServiceConfig.from_mapping(data, path=None)


def test_group_window_comes_from_model_info_or_litellm() -> None:
    config = ServiceConfig.from_mapping(
        {
            "model_list": [
                {
                    "model_name": "small",
                    "litellm_params": {"model": "openai/x"},
                    "model_info": {"max_input_tokens": 32_000},
                },
                {"model_name": "mini", "litellm_params": {"model": "gpt-4o-mini"}},
                {"model_name": "odd", "litellm_params": {"model": "openai/not-a-model"}},
            ]
        },
        path=None,
    )
    assert config.group_window("small") == 32_000
    assert config.group_window("mini") == 128_000
    assert config.group_window("odd") is None
    assert config.group_window("missing") is None


def test_service_config_errors_name_the_file_line_and_key(tmp_path: Path) -> None:
    path = router_yaml(tmp_path, "  virtual_models: [auto]\n  models:\n    direct: nope\n")
    with pytest.raises(ServiceConfigError) as caught:
        ServiceConfig.load(path)
    assert str(caught.value).startswith(f"{path}:7: 'rlm_router.models.direct' is 'nope'")


def test_sim_model_list_names_both_models() -> None:
    names = [m["model_name"] for m in sim_model_list("http://127.0.0.1:1/v1")]
    assert names == ["sim-large", "sim-mini"]
