"""PyTorch adapter (numeric.torch): values, gradients, dtypes, devices, module.

References are independent of the adapter: torch's own softmax (Gumbel
noise), the n = 2 closed forms of the design brief (normal: Phi(D/sqrt 2),
cauchy: 1/2 + atan(D/2)/pi), and torch.autograd.gradcheck, whose numerical
Jacobian is built from finite differences of the forward pass only.
"""

import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import numeric  # noqa: E402
from numeric.torch import (  # noqa: E402
    DeviceNotSupportedError,
    PerturbedSoftmax,
    perturbed_log_softmax,
    perturbed_softmax,
)

# (family, params, scores): well-conditioned scores for gradcheck. For the
# bounded families every difference stays inside (-1, 1) and away from the
# kinks (0, +-1) so that the probabilities depend smoothly on every score.
GRADCHECK_CASES = [
    ("gumbel", {}, [0.3, -0.4, 1.1, 0.05]),
    ("gumbel_min", {}, [0.3, -0.4, 1.1, 0.05]),
    ("normal", {}, [0.3, -0.4, 1.1, 0.05]),
    ("normal", {"scale": 0.7}, [0.3, -0.4, 1.1, 0.05]),
    ("logistic", {}, [0.3, -0.4, 1.1, 0.05]),
    ("laplace", {}, [0.3, -0.4, 1.1, 0.05]),
    ("exponential", {}, [0.3, -0.4, 1.1, 0.05]),
    ("uniform", {}, [0.13, -0.31, 0.52, 0.21]),
    ("cauchy", {}, [0.3, -0.4, 1.1, 0.05]),
    ("student_t", {"nu": 3.0}, [0.3, -0.4, 1.1, 0.05]),
    ("student_t", {"nu": 0.5, "scale": 2.0}, [0.3, -0.4, 1.1, 0.05]),
]
CASE_IDS = [f"{f}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'std'}" for f, p, _ in GRADCHECK_CASES]


def _scores(values, batch=2):
    """A (batch, n) float64 tensor: row b is ``values`` shifted and rescaled slightly."""
    base = torch.tensor(values, dtype=torch.float64)
    rows = [base * (1.0 - 0.1 * b) + 0.25 * b for b in range(batch)]
    return torch.stack(rows).requires_grad_(True)


@pytest.mark.parametrize("family,params,values", GRADCHECK_CASES, ids=CASE_IDS)
def test_gradcheck_probs(family, params, values):
    x = _scores(values)
    assert torch.autograd.gradcheck(
        lambda t: perturbed_softmax(t, family=family, **params), (x,), eps=1e-6, atol=1e-7, rtol=1e-5
    )


@pytest.mark.parametrize("family,params,values", GRADCHECK_CASES, ids=CASE_IDS)
def test_gradcheck_log_probs(family, params, values):
    x = _scores(values)
    assert torch.autograd.gradcheck(
        lambda t: perturbed_log_softmax(t, family=family, **params), (x,), eps=1e-6, atol=1e-7, rtol=1e-5
    )


@pytest.mark.parametrize("family,params,values", GRADCHECK_CASES, ids=CASE_IDS)
def test_gradient_rows_sum_to_zero(family, params, values):
    # shift invariance p(x + c) = p(x) => sum_k d(g.p)/dx_k = 0 for any cotangent g
    x = _scores(values, batch=3)
    p = perturbed_softmax(x, family=family, **params)
    g = torch.linspace(-1.0, 2.0, p.numel(), dtype=torch.float64).reshape(p.shape)
    (grad,) = torch.autograd.grad(p, x, g)
    assert torch.allclose(grad.sum(-1), torch.zeros(3, dtype=torch.float64), atol=1e-12)


def test_gumbel_equals_torch_softmax_batched():
    gen = torch.Generator().manual_seed(0)
    x = (3.0 * torch.randn(5, 7, 6, generator=gen, dtype=torch.float64)).requires_grad_(True)
    p = perturbed_softmax(x, family="gumbel")
    ref = torch.softmax(x, dim=-1)
    torch.testing.assert_close(p, ref, rtol=1e-13, atol=1e-15)
    lp = perturbed_log_softmax(x, family="gumbel")
    torch.testing.assert_close(lp, torch.log_softmax(x, dim=-1), rtol=1e-13, atol=1e-13)
    # gradients against torch's own softmax backward
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (ours,) = torch.autograd.grad(p, x, g)
    (theirs,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-13)
    (ours_log,) = torch.autograd.grad(lp, x, g)
    (theirs_log,) = torch.autograd.grad(torch.log_softmax(x, dim=-1), x, g)
    torch.testing.assert_close(ours_log, theirs_log, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dim", [0, 1, -2, 2])
def test_dim_gumbel_against_torch(dim):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    p = perturbed_softmax(x, family="gumbel", dim=dim)
    ref = torch.softmax(x, dim=dim)
    torch.testing.assert_close(p, ref, rtol=1e-13, atol=1e-15)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(p, x, g)[0], torch.autograd.grad(ref, x, g)[0],
                               rtol=1e-10, atol=1e-13)


def test_dim0_normal_pairs_closed_form():
    # n = 2 along dim 0: p_1 = Phi((x_1 - x_2)/sqrt 2), dp_1/dx_1 = phi(D/sqrt 2)/sqrt 2
    x = torch.tensor([[0.0, 1.5, -2.0, 7.0], [0.3, -0.5, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    p = perturbed_softmax(x, family="normal", dim=0)
    d = (x[0] - x[1]).detach() / math.sqrt(2.0)
    expect = 0.5 * torch.erfc(-d / math.sqrt(2.0))
    torch.testing.assert_close(p[0], expect, rtol=1e-13, atol=1e-16)
    torch.testing.assert_close(p[1], 0.5 * torch.erfc(d / math.sqrt(2.0)), rtol=1e-13, atol=1e-16)
    (grad,) = torch.autograd.grad(p[0].sum(), x)
    dens = torch.exp(-0.5 * d**2) / math.sqrt(2.0 * math.pi) / math.sqrt(2.0)
    # the VJP integrates g_k T1_k and T2_k each to 1e-13 relative (numeric._vjp), so its
    # error is relative to those O(1) terms, not to a small difference of them
    torch.testing.assert_close(grad[0], dens, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad[1], -dens, rtol=1e-12, atol=1e-14)


def test_cauchy_pairs_closed_form_and_scale():
    # cauchy n = 2: p_1 = 1/2 + atan(D/(2 s))/pi (difference of two Cauchy(s) is Cauchy(2 s))
    x = torch.tensor([[2.0, -1.0], [0.0, 10.0], [-3.0, -3.5]], dtype=torch.float64)
    for s in (1.0, 0.25, 3.0):
        p = perturbed_softmax(x, family="cauchy", scale=s)
        d = x[:, 0] - x[:, 1]
        torch.testing.assert_close(p[:, 0], 0.5 + torch.atan(d / (2 * s)) / math.pi, rtol=1e-13, atol=1e-16)


def test_float32_forward_and_backward():
    gen = torch.Generator().manual_seed(2)
    x64 = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    x32 = x64.to(torch.float32).requires_grad_(True)
    p32 = perturbed_softmax(x32, family="normal")
    assert p32.dtype == torch.float32
    p64 = perturbed_softmax(x32.detach().double(), family="normal")
    torch.testing.assert_close(p32.double(), p64, rtol=2e-7, atol=1e-9)
    lp32 = perturbed_log_softmax(x32, family="normal")
    assert lp32.dtype == torch.float32
    (g,) = torch.autograd.grad(p32[:, 0].sum(), x32)
    assert g.dtype == torch.float32
    assert torch.isfinite(g).all()
    assert torch.allclose(g.sum(-1), torch.zeros(4), atol=1e-6)


def test_float16_computed_in_float32_and_cast_back():
    x = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float16)
    p = perturbed_softmax(x, family="gumbel")
    assert p.dtype == torch.float16
    torch.testing.assert_close(p, torch.softmax(x.float(), -1).half())


def test_gumbel_native_path_and_infinite_scores():
    # gumbel is computed by torch itself (same values and gradients as torch.log_softmax of
    # x / scale); a +inf score goes to the engine, which gives 1/k to the k infinite scores
    x = torch.tensor([[0.5, -0.5, 2.0], [1.0, -math.inf, 0.0]], dtype=torch.float64, requires_grad=True)
    lp = perturbed_log_softmax(x, family="gumbel", scale=2.0)
    xr = x.detach().clone().requires_grad_(True)
    ref = torch.log_softmax(xr / 2.0, -1)
    torch.testing.assert_close(lp, ref, rtol=1e-15, atol=0)
    w = torch.tensor([[1.0, 0.0, -2.0], [0.5, 0.0, 1.0]], dtype=torch.float64)
    (lp * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-15, atol=0)
    y = torch.tensor([[math.inf, 0.0, math.inf]], dtype=torch.float64)
    torch.testing.assert_close(perturbed_softmax(y, family="gumbel"),
                               torch.tensor([[0.5, 0.0, 0.5]], dtype=torch.float64))


def test_requires_grad_false_path():
    x = torch.tensor([[0.5, -0.5, 2.0]], dtype=torch.float64)
    p = perturbed_softmax(x, family="gumbel")
    assert not p.requires_grad and p.grad_fn is None
    torch.testing.assert_close(p, torch.softmax(x, -1), rtol=1e-13, atol=0)
    with torch.no_grad():
        q = perturbed_softmax(x.clone().requires_grad_(True), family="gumbel")
    assert q.grad_fn is None


def test_zero_dim_tensor_is_length_one_vector():
    x = torch.tensor(3.5, dtype=torch.float64, requires_grad=True)
    p = perturbed_softmax(x, family="normal")
    assert p.shape == () and float(p.detach()) == 1.0
    p.backward()
    assert float(x.grad) == 0.0


def test_double_backward_is_refused():
    x = torch.tensor([[0.1, 0.7, -0.2]], dtype=torch.float64, requires_grad=True)
    p = perturbed_softmax(x, family="normal")
    (g,) = torch.autograd.grad(p[0, 0], x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), x)


def test_module_wrapper():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    m = PerturbedSoftmax("normal", dim=0)
    lm = PerturbedSoftmax("normal", dim=0, log=True)
    assert list(m.parameters()) == []
    assert "normal" in repr(m) and "dim=0" in repr(m)
    p, lp = m(x), lm(x)
    torch.testing.assert_close(p.sum(0), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(lp.exp(), p, rtol=1e-13, atol=1e-16)
    # gumbel module == nn.Softmax / nn.LogSoftmax
    torch.testing.assert_close(PerturbedSoftmax("gumbel", dim=1)(x), torch.nn.Softmax(dim=1)(x),
                               rtol=1e-13, atol=1e-16)
    torch.testing.assert_close(PerturbedSoftmax("gumbel", dim=1, log=True)(x), torch.nn.LogSoftmax(dim=1)(x),
                               rtol=1e-13, atol=1e-13)
    # parameters reach the engine: temperature equivalence p(x; s) = p(x / s; 1)
    ms = PerturbedSoftmax("student_t", nu=4.0, scale=2.0)
    torch.testing.assert_close(ms(x), perturbed_softmax(x / 2.0, "student_t", nu=4.0), rtol=1e-12, atol=1e-15)
    # inside a model, gradients reach the linear layer
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3).double(), PerturbedSoftmax("normal", log=True))
    loss = torch.nn.functional.nll_loss(model(x.detach()), torch.tensor([0, 1, 2]))
    loss.backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()
    assert model[0].weight.grad.abs().sum() > 0


def test_module_validates_at_construction():
    with pytest.raises(ValueError, match="gumbel"):
        PerturbedSoftmax("no_such_family")
    with pytest.raises(ValueError, match="scale"):
        PerturbedSoftmax("normal", scale=-1.0)


def test_custom_numeric_family():
    # a user-built standard normal (numeric.family_from_logcdf) must give the registry's normal values
    import numpy as np
    from scipy.special import log_ndtr

    fam = numeric.families.family_from_logcdf(log_ndtr, lambda z: -0.5 * z**2 - 0.5 * np.log(2 * np.pi), name="my_normal")
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    p = perturbed_softmax(x, family=fam)
    torch.testing.assert_close(p[0, 1], torch.tensor(0.5 * math.erfc(-1.0 / 2.0), dtype=torch.float64),
                               rtol=1e-12, atol=0)


def test_bad_inputs():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="gumbel"):       # lists valid names
        perturbed_softmax(x, family="gauss")
    with pytest.raises(ValueError, match="nu"):
        perturbed_softmax(x, family="student_t", nu=0.0)
    with pytest.raises(IndexError):
        perturbed_softmax(x, dim=2)
    with pytest.raises(TypeError):
        perturbed_softmax(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError):
        perturbed_softmax(torch.zeros(2, 3, dtype=torch.complex128))
    with pytest.raises(TypeError):
        perturbed_softmax([[0.0, 1.0]])


def test_non_cpu_device_gives_clear_error():
    x = torch.zeros(2, 3, device="meta")
    with pytest.raises(DeviceNotSupportedError, match=r"cpu\(\)"):
        perturbed_softmax(x)
    assert issubclass(DeviceNotSupportedError, ValueError)
    assert issubclass(DeviceNotSupportedError, RuntimeError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_clear_error():  # pragma: no cover - CPU-only CI
    with pytest.raises(DeviceNotSupportedError, match="cuda"):
        perturbed_softmax(torch.zeros(2, 3, device="cuda"))


def test_import_numeric_does_not_need_torch_and_hint_is_given():
    # block every import of torch with a meta-path finder (as if it were not installed)
    code = (
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NoTorch())\n"
        "import numeric\n"
        "numeric.probs([0.0, 1.0], 'normal')\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    import numeric.torch\n"
        "except ImportError as e:\n"
        "    assert '[torch]' in str(e) and 'download.pytorch.org/whl/cpu' in str(e), str(e)\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_masked_scores_minus_inf():
    # masking with -inf (as in attention): probability exactly 0, finite gradients, and the
    # unmasked entries match the n = 2 closed form Phi(D / sqrt 2)
    x = torch.tensor([[0.0, float("-inf"), 1.0]], dtype=torch.float64, requires_grad=True)
    p = perturbed_softmax(x, family="normal")
    pd = p.detach()
    assert float(pd[0, 1]) == 0.0
    expect = 0.5 * math.erfc(-(1.0 / math.sqrt(2.0)) / math.sqrt(2.0))
    assert abs(float(pd[0, 2]) - expect) <= 1e-13 * expect
    (g,) = torch.autograd.grad(p[0, 2], x)
    assert torch.isfinite(g).all() and float(g[0, 1]) == 0.0
    dens = math.exp(-0.25) / math.sqrt(2.0 * math.pi) / math.sqrt(2.0)   # phi(1/sqrt2)/sqrt2
    assert abs(float(g[0, 2]) - dens) <= 1e-12 and abs(float(g[0, 0]) + dens) <= 1e-12
    lp = perturbed_log_softmax(x, family="normal")
    assert float(lp.detach()[0, 1]) == float("-inf")
    (gl,) = torch.autograd.grad(lp[0, 2], x)
    assert torch.isfinite(gl).all()


def test_empty_batch():
    x = torch.zeros(0, 4, dtype=torch.float64, requires_grad=True)
    p = perturbed_softmax(x, family="normal")
    assert p.shape == (0, 4)
    p.sum().backward()
    assert x.grad.shape == (0, 4)
