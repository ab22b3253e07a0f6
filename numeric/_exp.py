"""``exp`` of terms of a normalised sum, without the slow path of tiny results.

numpy's vectorised ``exp`` takes a slow path for arguments whose result is
subnormal or underflows (tens of times slower per element than for ordinary
arguments on common x86 CPUs).  The log integrands of the
fast path are shifted by their maximum, and their far tails (or whole rows of
a block below their own window) sit there.  For terms of a sum whose largest
term is ``O(1)`` the argument can be floored at -700: what that adds is below
``1e-304`` of the sum.

The probabilities themselves keep ``np.exp``: a subnormal ``p`` is a correct
value, and it has to be produced whatever route computes it.

>>> import numpy as np
>>> exp_terms(np.array([0.0, -2000.0])).tolist() == [1.0, float(np.exp(-700.0))]
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["exp_terms", "TERM_FLOOR"]

TERM_FLOOR = -700.0


def exp_terms(x, out=None):
    """``exp(max(x, -700))`` elementwise (into ``out``, which may be ``x``)."""
    out = np.maximum(x, TERM_FLOOR, out=out)
    return np.exp(out, out=out)
