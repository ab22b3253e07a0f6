"""Tiny probabilities against the README's Guarantees, on the paths "auto" takes today.

Bounds (README, Guarantees): ``p`` within 1e-13 relative of the oracle for every entry
``p >= 1e-300``; ``log p`` within ``1e-12 max(1, |log p|)`` (also below 1e-300); VJPs:
each entry within 1e-10 of its own sum of |terms| ``sum_j |g_k - g_j| K_kj`` (entries
whose sum is below 1e-200 of the row's total to that absolute size), each row summing to
0 within 1e-12 of its absolute sum.

Rows: ``s N(0, 1)`` scores (s = 1, 2, 5, ...) with one or two entries pushed down until
their ``log p`` (as "auto" computes it: only the construction, never the reference) is at
a target in ``[log 1e-300, log 1e-250]`` or just below ``1e-300``.  References:
``derive.oracle`` (mpmath quadrature with a checked error, 20 digits) for ``p`` and
``log p``; ``tests/_vjp_reference.py`` (independent log-space panels) for the VJPs.
Failure messages list the worst points (family, n, s, index, p, error).

``exp(log p)`` alone cannot hold 1e-13 there: one rounding step of ``log p`` is 1.1e-13
relative below 1e-222, and the engines' ``log p`` is good to ~1-3 steps; ``probs``
recomputes such entries of normal, logistic and gumbel_min from the integral
(numeric._tiny_p).  Measured misses that remain are ``xfail(strict=True)`` below.
"""

import functools
import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from derive import oracle

from _vjp_reference import reference_vjp

LN10 = math.log(10.0)
P_REL = 1e-13
LP_REL = 1e-12
VJP_REL = 1e-10
FLOOR = 1e-200
SUM_REL = 1e-12
SMOOTH = ("normal", "logistic", "gumbel_min")
TARGETS = (-300 * LN10 + 0.05, -280 * LN10, -255 * LN10)


def _deep(base, fam, idx, target, **kw):
    """``base`` with entry ``idx`` set to ``max(base) - d``, ``log p_idx`` at ``target``
    (bisection on ``log d``; numeric's "auto" ``log p`` is only the construction)."""
    mu = np.array(base, dtype=np.float64)
    top = float(np.max(np.delete(mu, idx)))

    def lp(logd):
        mu[idx] = top - math.exp(logd)
        return numeric.log_probs(mu, fam, **kw)[idx]

    lo, hi = -3.0, 1.0
    while lp(hi) > target:
        lo, hi = hi, hi + 1.0
    for _ in range(55):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if lp(mid) > target else (lo, mid)
    mu[idx] = top - math.exp(hi)
    return mu


def _row(fam, n, s, seed, targets, **kw):
    return _row_cached(fam, n, s, seed, tuple(targets), tuple(sorted(kw.items()))).copy()


@functools.lru_cache(maxsize=64)
def _row_cached(fam, n, s, seed, targets, kw):
    kw = dict(kw)
    rng = np.random.default_rng(seed)
    mu = s * rng.normal(size=n)
    for k, t in enumerate(targets):
        mu = _deep(mu, fam, k, t, **kw)
    return mu


def _errors(mu, fam, label, ref_family=None, **kw):
    """``[(p rel err, log p err / max(1, |log p|), label, index, p)]`` against the oracle."""
    ref = oracle.probs([float(v) for v in mu], ref_family or fam, dps=20, **kw)
    p = numeric.probs(mu, fam, **kw)
    lp = numeric.log_probs(mu, fam, **kw)
    out = []
    with mp.workdps(30):
        for i, r in enumerate(ref):
            lr = mp.log(r)
            pe = float(abs(mp.mpf(float(p[i])) / r - 1)) if r >= mp.mpf("1e-300") else 0.0
            le = float(abs(mp.mpf(float(lp[i])) - lr)) / max(1.0, abs(float(lr)))
            out.append((pe, le, label, i, float(r)))
    return out


def _assert_within(errs):
    worst_p = sorted(errs, key=lambda e: -e[0])[:5]
    worst_lp = sorted(errs, key=lambda e: -e[1])[:5]
    fmt = "; ".join(f"{e[2]} i={e[3]} p={e[4]:.3e} rel {e[0]:.2e}" for e in worst_p)
    assert worst_p[0][0] <= P_REL, "p beyond 1e-13 relative: " + fmt
    fmt = "; ".join(f"{e[2]} i={e[3]} p={e[4]:.3e} lp err {e[1]:.2e}" for e in worst_lp)
    assert worst_lp[0][1] <= LP_REL, "log p beyond 1e-12 max(1,|log p|): " + fmt


# derive.oracle.log_probs(mu, family, dps=22) of rows built by _row / _deep (scores as
# float hex, references as 20-digit strings), stored so that the default tier needs no
# quadrature at 22 digits (0.2-2 s per row); the slow tier below calls the oracle itself
CASES = [
    ('normal n=3 s=1', 'normal',
     ['-0x1.657a62eecd220p+5', '0x1.a4ab22204681fp-1', '0x1.525e18ce5fc0ap-2'],
     ['-690.72552789821415418', '-0.4528341381371078031', '-1.0101168687693118911']),
    ('normal n=10 s=5', 'normal',
     ['-0x1.16f0baffaf921p+5', '-0x1.02967038e9347p+5', '-0x1.085c54b9185bap+1', '-0x1.86a28105ae394p+3', '0x1.1ff403af78f70p+3', '0x1.6e221177ffc00p+2', '-0x1.a08a8e2098206p+0', '0x1.ef3c789e8fcddp+1', '0x1.67f31cbe55f68p+0', '-0x1.627255618c540p+1'],
     ['-667.26588450388611635', '-587.15919871348177087', '-37.214675306263082232', '-142.03333974095590818', '-0.010382737028767687135', '-4.5834437889180736772', '-34.355452622774941183', '-9.1208002262318393903', '-18.083170187811395264', '-42.083930757472817868']),
    ('normal n=10 s=2', 'normal',
     ['-0x1.34dcd9b0b2583p+5', '-0x1.562e38db25a57p+1', '-0x1.5c717d3fa71f6p+1', '-0x1.680e523e37684p-1', '-0x1.2802ac57108edp+2', '-0x1.82dc887bea799p-2', '-0x1.ea19f30ae5f47p+0', '0x1.c985f6a3f2976p+0', '0x1.e9e7e191576cdp+0', '0x1.646b0909bd3f9p+1'],
     ['-690.72552789821364325', '-13.709184892736596506', '-13.912547537544687077', '-6.9019945189684065927', '-23.167851009611760678', '-6.0264219752129389004', '-10.771653620101282774', '-1.7428531514360029027', '-1.5634164979812772276', '-0.49083117553608177458']),
    ('logistic n=3 s=1', 'logistic',
     ['-0x1.5911da1620f26p+9', '0x1.a4ab22204681fp-1', '0x1.525e18ce5fc0ap-2'],
     ['-690.72552789821395163', '-0.54264177331579364778', '-0.87038757704134433991']),
    ('logistic n=10 s=5', 'logistic',
     ['-0x1.49eef4be3c579p+9', '-0x1.21a364bd8dab9p+9', '-0x1.085c54b9185bap+1', '-0x1.86a28105ae394p+3', '0x1.1ff403af78f70p+3', '0x1.6e221177ffc00p+2', '-0x1.a08a8e2098206p+0', '0x1.ef3c789e8fcddp+1', '0x1.67f31cbe55f68p+0', '-0x1.627255618c540p+1'],
     ['-667.74953082606968496', '-587.15919871348175479', '-9.9482571813049281996', '-20.090023782320568571', '-0.11478634713756833091', '-2.4094180545817172509', '-9.5101919735516074731', '-4.0802661536576832889', '-6.4842614375044068542', '-10.651926182453744744']),
    ('logistic n=10 s=2', 'logistic',
     ['-0x1.57d91e714411ap+9', '-0x1.562e38db25a57p+1', '-0x1.5c717d3fa71f6p+1', '-0x1.680e523e37684p-1', '-0x1.2802ac57108edp+2', '-0x1.82dc887bea799p-2', '-0x1.ea19f30ae5f47p+0', '0x1.c985f6a3f2976p+0', '0x1.e9e7e191576cdp+0', '0x1.646b0909bd3f9p+1'],
     ['-690.72552789821390765', '-5.7078639421014722786', '-5.7565427237714310118', '-3.7676154703795543692', '-7.6552111932226033056', '-3.4543014559328761778', '-4.9548625749734021942', '-1.5137849037703466004', '-1.4121033073310273851', '-0.76019898804218642433']),
    ('gumbel_min n=3 s=1', 'gumbel_min',
     ['-0x1.592220997ba07p+8', '0x1.a4ab22204681fp-1', '0x1.525e18ce5fc0ap-2'],
     ['-690.72552789821407391', '-0.47741563501747796562', '-0.96859670233524919059']),
    ('gumbel_min n=10 s=5', 'gumbel_min',
     ['-0x1.2f0a3408e4996p+6', '-0x1.2a3817ed7e967p+6', '-0x1.085c54b9185bap+1', '-0x1.86a28105ae394p+3', '0x1.1ff403af78f70p+3', '0x1.6e221177ffc00p+2', '-0x1.a08a8e2098206p+0', '0x1.ef3c789e8fcddp+1', '0x1.67f31cbe55f68p+0', '-0x1.627255618c540p+1'],
     ['-596.89998878597218476', '-587.15919871348193506', '-25.253584196819485626', '-90.459686537081224693', '-0.037846402518145361373', '-3.333939731584623978', '-23.463494275334069784', '-6.5130447960452544665', '-12.766215847554024066', '-28.345355893404883654']),
    ('gumbel_min n=10 s=2', 'gumbel_min',
     ['-0x1.3b94d4faf5e0dp+6', '-0x1.562e38db25a57p+1', '-0x1.5c717d3fa71f6p+1', '-0x1.680e523e37684p-1', '-0x1.2802ac57108edp+2', '-0x1.82dc887bea799p-2', '-0x1.ea19f30ae5f47p+0', '0x1.c985f6a3f2976p+0', '0x1.e9e7e191576cdp+0', '0x1.646b0909bd3f9p+1'],
     ['-690.72552789821419537', '-14.838245739234175856', '-15.068641940283543211', '-7.292852955867608633', '-25.989092080182095203', '-6.3380683522310653004', '-11.546419891813228787', '-1.7063123781377337637', '-1.5256086962404689582', '-0.51329706548801168587']),
    ('normal n=6 boundary 0', 'normal',
     ['-0x1.46fa5a7987311p+5', '-0x1.47200820833aap+1', '0x1.ac221aa4baeafp-2', '-0x1.22b2b2a3f6eacp-1', '-0x1.cf834bc8b00abp-2', '-0x1.b98b0164a5baep-3'],
     ['-690.76552789821417853', '-6.1913488393436318631', '-0.70763695135025209263', '-2.0375539903877155694', '-1.8613997505731936116', '-1.5171160372556432138']),
    ('normal n=6 boundary 1', 'normal',
     ['-0x1.4367f92a7ff63p+5', '-0x1.65d22e04add80p-3', '0x1.a9e9d0c49884cp+0', '0x1.517bd05985e69p-1', '-0x1.a4329cf3fbe33p+0', '-0x1.550049736df1bp-8'],
     ['-702.28845336318416387', '-2.9435810088419874738', '-0.39142306577070072972', '-1.6178953276759708565', '-6.1596268477075175099', '-2.6478893454599563567']),
    ('normal n=6 boundary 2', 'normal',
     ['-0x1.470fa11ecb284p+5', '-0x1.530930ee62e3ep+0', '-0x1.fca504a3d846ap-3', '0x1.ae89324d005b8p-2', '0x1.22d3f20fc6f7bp+0', '0x1.c15b7f53fc3e3p-4'],
     ['-713.80137882815432264', '-4.6657104799519607418', '-2.5311320256508656744', '-1.5016389934077018346', '-0.60393780902827971073', '-1.9547559806251447701']),
    ('laplace n=3 s=1', 'laplace',
     ['-0x1.2b101e4ba0a33p+9', '0x1.1750b2ae7dfcdp-2', '-0x1.3bbb6d653b45fp+0'],
     ['-598.67212417845238126', '-0.21615567078276653891', '-1.6378882225620918988']),
    ('user normal n=10', 'user_normal',
     ['-0x1.260978292b143p+5', '0x1.8d77fda7a5346p-6', '0x1.8bbaea516f14bp+0', '0x1.171812319ff57p-1', '-0x1.02ad5740ec5bdp-1', '-0x1.767447c2a6cd4p-3', '0x1.14bfb5c71b1e6p-1', '0x1.ef61eded55e3bp+0', '-0x1.141759e114d23p-2', '-0x1.f2cee48a69e8cp-3'],
     ['-644.72382603833221748', '-3.7172958733315446981', '-1.1917610008591411552', '-2.721164528097591241', '-4.8942061598433319259', '-4.1569680465545910724', '-2.7292759677344359409', '-0.71092115198348637789', '-4.3489859676039968605', '-4.2908297307132166173']),
]


def _family(name):
    if name == "user_normal":
        from scipy.special import log_ndtr
        return numeric.family_from_logcdf(log_ndtr, lambda x: -x ** 2 / 2 - 0.5 * np.log(2 * np.pi),
                                          name="my_normal")
    return name


def _stored_errors(label):
    (case,) = [c for c in CASES if c[0] == label]
    _, name, hexes, refs = case
    mu = np.array([float.fromhex(h) for h in hexes])
    return _compare(mu, _family(name), refs, label)


def _compare(mu, fam, lref, label):
    """Errors against the stored 20-digit ``log p`` strings (read and exponentiated at 30
    digits: at mpmath's default 15 a ``log p`` of -690 would carry 6e-14 of its own)."""
    p = numeric.probs(mu, fam)
    lp = numeric.log_probs(mu, fam)
    out = []
    with mp.workdps(30):
        for i, s in enumerate(lref):
            lr = mp.mpf(s)
            r = mp.exp(lr)
            pe = float(abs(mp.mpf(float(p[i])) / r - 1)) if r >= mp.mpf("1e-300") else 0.0
            le = float(abs(mp.mpf(float(lp[i])) - lr)) / max(1.0, abs(float(lr)))
            out.append((pe, le, label, i, float(r)))
    return out


@pytest.mark.parametrize("fam", SMOOTH)
def test_small_rows_tiny_entries_vs_oracle(fam):
    """n = 3 (s = 1) with one entry just above 1e-300, n = 10 (s = 5) with entries at
    1e-290 and 1e-255, n = 10 (s = 2) one at 1e-300: the small-n kernel's rows."""
    errs = []
    for label in (f"{fam} n=3 s=1", f"{fam} n=10 s=5", f"{fam} n=10 s=2"):
        errs += _stored_errors(label)
    _assert_within(errs)


def test_boundary_below_1e300():
    """Entries at 1.0e-300, 1e-305, 1e-310 (no relative bound below 1e-300): log p within
    its bound, p finite and positive; below the refined range p is ``exp(log p)``."""
    errs = []
    for k in range(3):
        label = f"normal n=6 boundary {k}"
        errs += _stored_errors(label)
        (case,) = [c for c in CASES if c[0] == label]
        mu = np.array([float.fromhex(h) for h in case[2]])
        p, lp = numeric.probs(mu, "normal"), numeric.log_probs(mu, "normal")
        assert np.isfinite(p).all() and (p > 0).all()
        if k:
            assert p[0] == np.exp(lp[0])
    _assert_within(errs)


@pytest.mark.parametrize("fam", SMOOTH)
def test_float32_input(fam):
    """float32 scores: the float64 result of the float32 values, rounded once (tiny
    entries underflow to 0 in float32)."""
    mu = _row(fam, 10, 2.0, 4, TARGETS[1:]).astype(np.float32)
    p32 = numeric.probs(mu, fam)
    assert p32.dtype == np.float32
    p64 = numeric.probs(mu.astype(np.float64), fam)
    assert np.array_equal(p32, p64.astype(np.float32))


@pytest.mark.parametrize("fam", SMOOTH)
@pytest.mark.parametrize("log", [False, True])
def test_vjp_rows_with_tiny_entries(fam, log):
    """One-hot cotangents on a tiny entry and on the top, and a dense cotangent (every
    entry), n = 10, against the independent reference."""
    mu = _row(fam, 10, 2.0, 5, TARGETS[:2])
    z = mu - mu.max()
    rng = np.random.default_rng(6)
    fn = numeric.log_probs_vjp if log else numeric.probs_vjp
    bad = []
    sups = [{0: 1.0}, {int(np.argmax(mu)): -1.0}, {k: float(v) for k, v in enumerate(rng.normal(size=10))}]
    for sup in sups:
        g = np.zeros(10)
        for k, v in sup.items():
            g[k] = v
        got = fn(mu, g, fam)
        ref, terms, _ = reference_vjp(z, sup, fam, log=log)
        floor = FLOOR * terms.sum()
        with np.errstate(invalid="ignore"):
            err = np.where(got == ref, 0.0, np.abs(got - ref) / np.maximum(terms, floor))
        if err.max() > VJP_REL:
            k = int(np.argmax(err))
            bad.append(f"{fam} n=10 s=2 cot={sorted(sup)[:3]} i={k} err {err[k]:.2e} of terms")
        assert abs(math.fsum(got)) <= SUM_REL * np.abs(got).sum()
    assert not bad, bad


def test_refinement_cheap_without_tiny_entries():
    """Rows with no entry in the refined range are returned as the engines give them."""
    x = np.random.default_rng(7).normal(size=(50, 10))
    lp = numeric.log_probs(x, "normal")
    assert np.array_equal(numeric.probs(x, "normal"), np.exp(lp))


# ---- measured misses that remain (exp(log p) on these paths) ---------------------------

@pytest.mark.xfail(strict=True, reason="laplace small-n rows: p = exp(log p) with log p "
                   "1.3 steps off at log p = -599 (1.45e-13 relative; README: 2 steps)")
def test_laplace_tiny_entry_miss():
    _assert_within(_stored_errors("laplace n=3 s=1"))


@pytest.mark.xfail(strict=True, reason="user families (quadrature route): p = exp(log p), "
                   "1.7e-13 relative at log p = -645, 1.5 steps (README: 2 steps)")
def test_user_family_tiny_entry_miss():
    _assert_within(_stored_errors("user normal n=10"))


# ---- slow tier: broader sweeps -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("fam", SMOOTH)
def test_sweep_small_n(fam):
    errs = []
    for n, s, seed in ((3, 5.0, 11), (10, 1.0, 12), (10, 10.0, 13)):
        for t in TARGETS[:2]:
            mu = _row(fam, n, s, seed, (t, t + 7.0) if n > 3 else (t,))
            errs += _errors(mu, fam, f"{fam} n={n} s={s}")
    _assert_within(errs)


@pytest.mark.slow
@pytest.mark.parametrize("fam", SMOOTH)
def test_o_n_engine_row(fam):
    """n = 256 (the O(n) engines) with entries at 1e-299.9 and 1e-280."""
    mu = _row(fam, 256, 1.0, 21, (TARGETS[0], TARGETS[1]))
    _assert_within(_errors(mu, fam, f"{fam} n=256 s=1"))


@pytest.mark.slow
@pytest.mark.parametrize("fam", SMOOTH)
def test_vjp_o_n_rows_with_tiny_entries(fam):
    """n = 300 (the O(n) engines) with an entry at 1e-299.9: a one-hot cotangent on it
    and one on the 5 lowest entries, both VJPs, against the reference (logistic: spread
    ~690, the reference's panels take ~3 s per call)."""
    mu = _row(fam, 300, 1.0, 31, (TARGETS[0],))
    z = mu - mu.max()
    low = np.argsort(mu)[:5]
    sups = [{0: 1.0}, {int(k): float(v) for k, v in zip(low, np.random.default_rng(32).normal(size=5))}]
    bad = []
    for log in (False, True):
        fn = numeric.log_probs_vjp if log else numeric.probs_vjp
        for sup in sups:
            g = np.zeros(mu.size)
            for k, v in sup.items():
                g[k] = v
            got = fn(mu, g, fam)
            ref, terms, _ = reference_vjp(z, sup, fam, log=log)
            floor = FLOOR * terms.sum()
            with np.errstate(invalid="ignore"):
                err = np.where(got == ref, 0.0, np.abs(got - ref) / np.maximum(terms, floor))
            if err.max() > VJP_REL:
                k = int(np.argmax(err))
                bad.append(f"{fam} n=300 log={log} cot={sorted(sup)[:3]} i={k} err {err[k]:.2e}")
            assert abs(math.fsum(got)) <= SUM_REL * np.abs(got).sum()
    assert not bad, bad
