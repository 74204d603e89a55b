from rlm_router.rlm_core.env import apply_offline_defaults

apply_offline_defaults()
