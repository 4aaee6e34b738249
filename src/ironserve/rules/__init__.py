"""One owner per rule: every threshold and detection that roles, health and monitoring share.

Each module owns its numbers and its decision as pure functions over parsed facts
(``ironserve.facts``) and the Plan; callers gather facts and word the verdict, they never
re-derive it:

- ``disk``: free space a node needs for the Plan's weights, given what it already holds;
- ``limits``: locked memory (memlock) and ``/dev/shm``;
- ``fabric``: NVSwitch (fabric manager wanted), Mellanox HCAs, InfiniBand/RoCE port state;
- ``serving``: KV-cache usage and request queue limits, and their PromQL for vLLM and SGLang.

docs/architecture.md ("Rules and their one owner") lists who reads each.
"""
