"""Data keys of roles/engine (role-prefixed ``serve_``: ``engine_`` is the inventory's engine
section; None = must be given). Times are seconds."""

from typing import Any

DEFAULTS: dict[str, Any] = {
    # (The generated key's folder is the inventory's serving_api_key_dir: the Plan names it.)
    # Resolving the image's digest on the control machine (registry HTTP API).
    "serve_registry_timeout": 15,
    # Until `ray status` in the head shows every planned node and GPU.
    "serve_ray_timeout": 600,
    # Until /health answers: a 671B load takes 40-50 minutes; a log silent this long is a stall.
    "serve_ready_timeout": 7200,
    "serve_stall_timeout": 900,
    "serve_poll_interval": 2,
    # The serving container restarting this often during the wait is a crash loop, not a load
    # (a rank started before its peers may restart once or twice while they come up).
    "serve_ready_restarts": 3,
    # The proof: a real chat completion with the key (and a refusal without it).
    "serve_completion_prompt": "Say hello.",
    "serve_completion_max_tokens": 8,
    "serve_completion_timeout": 300,
    # Stopping the serve process (TERM, then KILL) before it is started again.
    "serve_stop_grace": 30,
}
