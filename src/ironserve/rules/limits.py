"""Host limits: locked memory (memlock) and ``/dev/shm``.

memlock: RDMA registers pinned memory, so NCCL over InfiniBand/RoCE needs it. Enough is
*unlimited*, or at least the finite limit the site gives its engine containers (dockerd's
``default-ulimits`` memlock ``Hard`` in ``container_runtime_daemon_settings``, e.g. the lab's,
where the machine itself caps it): a shell limit below what the containers get is the fault.
Where the site turns roles/base's memlock off and sets no container limit, nothing is expected.
Preflight (a note) and ``ironserve health`` (host.memlock, WARN) both judge with
:func:`memlock_enough` against :func:`memlock_expected`.

/dev/shm: at least :data:`SHM_MIN_BYTES` (``preflight_min_shm_bytes``) for processes outside
containers (engine containers get their own with ``--shm-size``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ironserve.facts.host import Memlock
from ironserve.rules.disk import size_text

UNLIMITED = -1
SHM_MIN_BYTES = 64 * 1024**2


def memlock_expected(memlock_unlimited: bool, daemon_settings: Mapping[str, Any]) -> int | None:
    """:data:`UNLIMITED`, a size in bytes, or None (no expectation).

    ``daemon_settings`` is the inventory's ``container_runtime_daemon_settings``: a finite
    ``default-ulimits`` memlock ``Hard`` there is what engine containers get, so it is enough;
    else roles/base's unlimited (``base_memlock_unlimited``)."""
    ulimits = daemon_settings.get("default-ulimits") or {}
    hard = (ulimits.get("memlock") or {}).get("Hard")
    if isinstance(hard, int) and not isinstance(hard, bool):
        return UNLIMITED if hard < 0 else hard
    return UNLIMITED if memlock_unlimited else None


def memlock_enough(limit: Memlock, expected: int | None) -> bool:
    """Unlimited always is; a size is when it reaches a finite expectation."""
    if expected is None or limit["unlimited"]:
        return True
    return expected >= 0 and (limit["bytes"] or 0) >= expected


def memlock_text(limit: Memlock) -> str:
    return "unlimited" if limit["unlimited"] else size_text(limit["bytes"] or 0)


def memlock_expected_text(expected: int | None) -> str:
    if expected is None:
        return "any"
    return "unlimited" if expected < 0 else f">= {size_text(expected)}"


def shm_enough(size_bytes: int, minimum: int = SHM_MIN_BYTES) -> bool:
    return size_bytes >= minimum
