"""Hypothesis settings for the property tests: the same examples on every run (CI must be
deterministic), no example database, and few enough examples to finish in seconds."""
from __future__ import annotations

from hypothesis import HealthCheck, settings

# Fast pure functions can afford more examples than tests that write to the database.
PURE = settings(max_examples=200, derandomize=True, database=None, deadline=None)
DB = settings(max_examples=25, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
