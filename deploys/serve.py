"""Serve: the Plan's engine containers on every node, the endpoint proven with a completion.

    pyinfra -y inventories/lab.py deploys/serve.py

Before any operation: the engine image resolved once on this machine to a digest (a missing
image stops here, nothing changed), the API key read from serving_api_key_file (or generated
into a 0600 file here, and said where), each node's containers read. Then, per serving group:
the 0600 env file, the image pulled by digest on every node in parallel, the head's container,
the workers', the Ray wait and `vllm serve` in the head (vLLM on Ray), the readiness wait on
/health and a real chat completion. Only containers whose spec changed are replaced; a second
run changes nothing and restarts nothing. Open WebUI follows when webui_enabled is set.
The firewall comes first: the API port it opens is the one of the Plan being served (another
engine or `engine_port` than at provisioning moves it), and nothing changes when it is current.
The gateway follows (nginx on the public port checking the API key on every path, the engine
behind it on the API node's loopback), so the readiness wait and the completion pass through it.
The image cache (image_cache_enabled: a pull-through registry on each group's head) starts
before the engine, whose pull goes through it.
"""

from pyinfra.context import host, state

from ironserve.roles import plan_of
from ironserve.roles.engine import deploy_engine
from ironserve.roles.firewall import deploy_firewall
from ironserve.roles.gateway import deploy_gateway
from ironserve.roles.image_cache import deploy_image_cache
from ironserve.roles.webui import deploy_webui

plan_of(state, host)  # a bad inventory stops here, listing every problem
deploy_firewall()
deploy_gateway()
deploy_image_cache()
deploy_engine()
deploy_webui()
