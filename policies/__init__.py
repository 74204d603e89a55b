from rlm_core.env import apply_offline_defaults

apply_offline_defaults()
