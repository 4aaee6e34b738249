"""pyinfra facts that read a node's accelerator, fabric, container and host state.

Each fact parses a vendor tool's machine format (``nvidia-smi --format=csv``, ``npu-smi``,
``hccn_tool``, ``ibstat``, ``lspci -mm``, ``docker info --format``, sysfs) and returns plain
JSON-able data described by a ``TypedDict``. The parsing lives in small pure functions next to
each fact (``parse_*``) so health checks can run them on captured output without pyinfra.

Modules: :mod:`.nvidia`, :mod:`.ascend`, :mod:`.rdma`, :mod:`.docker`, :mod:`.host`.
"""
