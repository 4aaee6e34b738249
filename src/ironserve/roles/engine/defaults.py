"""Data keys of roles/engine (role-prefixed ``serve_``: ``engine_`` is the inventory's engine
section; None = must be given). Times are seconds."""

from typing import Annotated

from pydantic import Field

from ironserve.config.values import Count, Line, Seconds
from ironserve.deploy.role_data import RoleData


class EngineData(RoleData):
    # (The generated key's folder is the inventory's serving_api_key_dir: the Plan names it.)
    # Resolving the image's digest on the control machine (registry HTTP API).
    serve_registry_timeout: Seconds = 15
    # Until `ray status` in the head shows every planned node and GPU.
    serve_ray_timeout: Seconds = 600
    # Until /health answers: a 671B load takes 40-50 minutes; a log silent this long is a stall.
    serve_ready_timeout: Seconds = 7200
    serve_stall_timeout: Seconds = 900
    serve_poll_interval: Seconds = 2
    # The serving container restarting this often during the wait is a crash loop, not a load
    # (a rank started before its peers may restart once or twice while they come up).
    serve_ready_restarts: Count = 3
    # The proof: a real chat completion with the key (and a refusal without it).
    serve_completion_prompt: Annotated[Line, Field(min_length=1)] = "Say hello."
    serve_completion_max_tokens: Count = 8
    serve_completion_timeout: Seconds = 300
    # Stopping the serve process (TERM, then KILL) before it is started again.
    serve_stop_grace: Count = 30


DEFAULTS = EngineData.defaults()
