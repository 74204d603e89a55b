"""The simulated OpenAI-compatible provider (see ``server``) and its models.

``SimServer(SimConfig(seed=0, time_scale=0.01))`` serves ``sim-large``, ``sim-mini`` and
``sim-small`` on loopback; ``register_sim_models()`` tells litellm their windows and prices.
How the simulated models read prompts and how their recall is calibrated: ``reader``,
``recall`` and CALIBRATION.md; how they act as RLM root models: ``root`` and ``programs``.
"""

from rlm_router.sim.faults import FAULT_HEADER, FAULTS
from rlm_router.sim.models import SIM_MODELS, SimModel, register_sim_models
from rlm_router.sim.server import SimConfig, SimServer

__all__ = [
    "FAULTS",
    "FAULT_HEADER",
    "SIM_MODELS",
    "SimConfig",
    "SimModel",
    "SimServer",
    "register_sim_models",
]
