"""mpmath CDF/PDF pairs written out independently of the code under test.

Shared by the numeric accuracy and VJP tests as their high-precision
reference kernels (standard forms, scale 1).
"""

import mpmath as mp


def mp_family(name):
    """``(cdf, pdf)`` as mpmath callables for the registry family ``name``."""
    if name == "normal":
        return mp.ncdf, mp.npdf
    if name == "logistic":
        return (lambda x: 1 / (1 + mp.exp(-x))), (lambda x: mp.exp(-abs(x)) / (1 + mp.exp(-abs(x))) ** 2)
    if name == "cauchy":
        return (lambda x: mp.atan(-1 / x) / mp.pi if x < 0 else mp.mpf(1) / 2 + mp.atan(x) / mp.pi), \
            (lambda x: 1 / (mp.pi * (1 + x * x)))
    if name == "laplace":
        return (lambda x: mp.exp(x) / 2 if x < 0 else 1 - mp.exp(-x) / 2), (lambda x: mp.exp(-abs(x)) / 2)
    if name == "exponential":
        return (lambda x: -mp.expm1(-x) if x > 0 else mp.mpf(0)), (lambda x: mp.exp(-x) if x >= 0 else mp.mpf(0))
    if name == "gumbel_min":
        return (lambda x: -mp.expm1(-mp.exp(x))), (lambda x: mp.exp(x - mp.exp(x)))
    raise KeyError(name)
