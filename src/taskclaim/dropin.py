"""The plan's drop-in: ``get_oldest_queued_task_supabase()``, as ``source/db_operations.py`` had it.

It reads the module settings of ``taskclaim.client`` (``SUPABASE_EDGE_CLAIM_TASK_URL``,
``SUPABASE_ACCESS_TOKEN``, ``SUPABASE_CLIENT``, ``DATABASE_URL``), else the environment, on every call,
and keeps one ``TaskClient`` for as long as they stay the same.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from taskclaim.client import TaskClient, configured

log = logging.getLogger("taskclaim.client")

_default: tuple[tuple[Any, ...], TaskClient] | None = None
_default_lock = threading.Lock()


@atexit.register
def _close_default() -> None:
    """The drop-in's client holds a connection for the fallback; close it when the worker exits."""
    with _default_lock:
        if _default is not None:
            _default[1].close()


def get_oldest_queued_task_supabase(worker_id: str | None = None) -> dict[str, Any] | None:
    """The plan's drop-in: ``{task_id, params, task_type, project_id, …}`` of the claimed task, or None.

    The edge path first; 204 is None at once; when the service cannot serve (the rule above
    ``RETRYABLE_STATUSES``) it falls back to ``func_claim_task`` (or, for a user's token,
    ``func_claim_user_task``) over ``DATABASE_URL``/``SUPABASE_DB_URL`` or ``SUPABASE_CLIENT``. Like the
    plan's original it never raises: whatever goes wrong is logged on ``taskclaim.client`` and answered
    None. The module's settings are read on every call.
    """
    global _default
    url, token, database, supabase = configured()
    key = (url, token, database, id(supabase))
    with _default_lock:
        if _default is None or _default[0] != key:
            if _default is not None:
                _default[1].close()
            _default = (key, TaskClient())
        client = _default[1]
    try:
        task = client.claim(worker_id=worker_id)
    except Exception as exc:  # like the original: a worker loop written for it expects None, never a raise
        log.warning("get_oldest_queued_task_supabase: no task claimed: %s", exc)
        return None
    return None if task is None else task.as_dict()
