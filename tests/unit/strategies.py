"""Hypothesis strategies shared by the unit tests: any JSON, and bodies of the routes' field names."""

from __future__ import annotations

from hypothesis import strategies as st

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
FIELDS = [
    "worker_id", "lease_seconds", "claim_id", "wait_seconds", "task_types", "max_tasks", "task_id",
    "attempt", "result", "output_location", "error", "retry", "project_id", "task_type", "params",
    "dependant_on", "idempotency_key", "max_attempts", "extra",
]  # fmt: skip
bodies_of_fields = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
