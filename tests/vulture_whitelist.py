"""Names the dead-code check (vulture, tests/test_packaging.py) must not report.

Each is used by a protocol vulture cannot see; this file is read by vulture,
never imported or run.
"""
# ruff: noqa
# flake8: noqa

# module attribute protocol (PEP 562): lazy public names of derive
__getattr__
__dir__

# signal handler signature (signal.signal calls handler(signum, frame))
signum
frame

# argparse hooks: ArgumentParser.error is overridden, subparsers.required is read by argparse
_.error
_.required

# functools.lru_cache keys: the verification level is part of the cache key only
level

# sympy Function / Expr protocol: nargs, is_commutative, eval, fdiff, _eval_evalf, _eval_rewrite_as_*,
# doit(**hints), the _latex printer hook
nargs
is_commutative
hints
_.eval
_.fdiff
_._eval_evalf
_._eval_rewrite_as_OwenT
_._latex

# numpy array flags set to make cached tables read-only
_.writeable

# torch.autograd.Function / torch.nn.Module protocol
_.forward
_.extra_repr

# public result attribute (derive.derivation.Evaluation.working_dps)
working_dps

# sympy LatticeOp (Max/Min) protocol: _argset is read by sympy's LatticeOp methods
_._argset
