"""Shared pytest configuration: hypothesis profiles, mpmath precision isolation.

The default profile keeps the suite fast and reproducible: a fixed set of
examples per property (``derandomize``), so a failure in CI fails again on
any machine.  ``HYPOTHESIS_PROFILE=thorough`` (used with ``-m slow``) runs
>= 10,000 random examples per property and prints the blob that replays a
failure.

mpmath's working precision ``mp.prec`` is global state: a test (or a module
imported at collection) that sets ``mp.dps`` would change the references of
every test after it, so a result would depend on test order.  Collection ends
with mpmath at its default precision, and every test gets back, after it
runs, the precision it started with.  A module that wants a higher precision
for all its tests says so with a module-scoped ``mp.workdps`` fixture.
"""

import os

import mpmath
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=10_000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


_MPMATH_DEFAULT_PREC = 53


def pytest_collection_finish(session):
    """Undo any precision a test module set at import time."""
    mpmath.mp.prec = _MPMATH_DEFAULT_PREC


@pytest.fixture(autouse=True)
def _restore_mpmath_precision():
    prec = mpmath.mp.prec
    yield
    mpmath.mp.prec = prec
