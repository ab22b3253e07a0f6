"""Shared pytest configuration: hypothesis profiles.

The default profile keeps the suite fast; ``HYPOTHESIS_PROFILE=thorough``
(used with ``-m slow``) runs >= 10,000 examples per property.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
