"""Shared pytest configuration: hypothesis profiles.

The default profile keeps the suite fast and reproducible: a fixed set of
examples per property (``derandomize``), so a failure in CI fails again on
any machine.  ``HYPOTHESIS_PROFILE=thorough`` (used with ``-m slow``) runs
>= 10,000 random examples per property and prints the blob that replays a
failure.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=10_000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
