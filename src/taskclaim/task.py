"""A claimed task as a worker holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    task_id: str
    params: dict[str, Any]
    task_type: str
    project_id: str
    worker_id: str
    attempt: int | None = None
    lease_expires_at: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        # supabase-py returns the columns as the function names them; old deployments used *_out names.
        data = {key.removesuffix("_out"): value for key, value in row.items()}
        expires = data.get("lease_expires_at")
        return cls(
            task_id=str(data["task_id"]),
            params=data.get("params") or {},
            task_type=str(data["task_type"]),
            project_id=str(data["project_id"]),
            worker_id=str(data["worker_id"]),
            attempt=data.get("attempt"),
            lease_expires_at=None if expires is None else str(expires),
        )

    def as_dict(self) -> dict[str, Any]:
        """What the plan's ``get_oldest_queued_task_supabase()`` returned, and a little more."""
        return {
            "task_id": self.task_id,
            "params": self.params,
            "task_type": self.task_type,
            "project_id": self.project_id,
            "worker_id": self.worker_id,
            "attempt": self.attempt,
            "lease_expires_at": self.lease_expires_at,
        }
