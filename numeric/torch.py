"""PyTorch adapter: the perturbed softmax as an autograd function.

``perturbed_softmax(x, family, dim)`` returns

    p_i = P[ argmax_j (x_j + eps_j) = i ],   eps_j iid ~ family

along ``dim``; ``perturbed_log_softmax`` returns ``log p_i`` (computed in log
space, so tiny probabilities keep their relative accuracy).  With
``family="gumbel"`` both equal ``torch.softmax`` / ``torch.log_softmax``, and are
computed by them (autograd included) unless a score is ``+inf``.

The forward pass calls the numpy engine (:func:`numeric.probs` /
:func:`numeric.log_probs`) on ``x.detach().cpu().numpy()``; the backward pass
is the engine's vector-Jacobian product :func:`numeric.log_probs_vjp` (for
``perturbed_softmax`` with the cotangent ``g * p``, since ``dp = p dlog p``, ``p``
saved by the forward; a cotangent with one nonzero per row, as a loss on one entry
gives, takes the engine's one-hot path)::

    (J^T g)_k = ∫ h(t - x_k) F(t) (g_k S(t) - Γ(t)) dt,
    F = ∏_j Phi(t - x_j),  h = phi/Phi,  S = Σ_j h(t - x_j),  Γ = Σ_j g_j h(t - x_j)

so autograd never differentiates through a sampling loop or a quadrature.

Scope (documented decisions):

* **CPU only.**  Tensors on any other device (CUDA, MPS, meta) raise
  :class:`DeviceNotSupportedError` (a ``ValueError`` and a ``RuntimeError``)
  instead of silently copying to the host and back on every call; move the
  input with ``x.cpu()`` yourself if that round trip is acceptable.
* **dtypes.**  float64 in -> float64 out, float32 in -> float32 out (the
  engine works in float64 internally and rounds).  float16 / bfloat16 are
  computed in float32 and cast back.  Integer, bool and complex tensors
  raise ``TypeError`` (as ``torch.softmax`` does for integers).
* **Gradients.**  First derivatives only: the backward is marked
  ``once_differentiable``, so a second ``backward`` through it (double
  backward, Hessian-vector products) raises a ``RuntimeError``.

>>> import torch
>>> from numeric.torch import perturbed_softmax
>>> x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
>>> p = perturbed_softmax(x, family="normal")
>>> round(float(p.detach().sum()), 12)
1.0
>>> p[0, 2].backward()
>>> abs(float(x.grad.sum())) < 1e-12   # shift invariance: gradients sum to 0
True
"""

from __future__ import annotations

from typing import Any

try:
    import torch
    from torch.autograd.function import once_differentiable
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    # a bare `pip install torch` resolves to a CUDA build (several GB) on Linux,
    # so the message names the CPU wheel index
    raise ModuleNotFoundError(
        "torch is not installed (needed for numeric.torch, the [torch] extra): "
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",
        name="torch",
    ) from _exc

import numpy as np

import numeric as _numeric
from numeric.families import get_family as _get_family

__all__ = [
    "perturbed_softmax",
    "perturbed_log_softmax",
    "PerturbedSoftmax",
    "PerturbedSoftmaxFunction",
    "PerturbedLogSoftmaxFunction",
    "DeviceNotSupportedError",
]


class DeviceNotSupportedError(ValueError, RuntimeError):
    """The input tensor is not on the CPU (the engine is numpy-based)."""


_UPCAST = (torch.float16, torch.bfloat16)


def _check_tensor(x, name="x"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.device.type != "cpu":
        raise DeviceNotSupportedError(
            f"{name} is on device {str(x.device)!r}; numeric.torch computes with the numpy "
            f"engine on the CPU only. Move the input first: {name}.cpu()"
        )
    if x.is_complex():
        raise TypeError(f"{name} must be a real floating tensor, got complex dtype {x.dtype}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float32 or float64), got dtype {x.dtype}")
    if x.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {x.layout}")


def _check_dim(x, dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    nd = max(x.dim(), 1)
    if not -nd <= int(dim) < nd:
        raise IndexError(f"dim {dim} is out of range for a tensor with {x.dim()} dimension(s)")
    return int(dim) % nd


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detached CPU numpy copy in float64 or float32 (float16/bfloat16 -> float32)."""
    t = t.detach()
    if t.dtype in _UPCAST:
        t = t.to(torch.float32)
    return np.ascontiguousarray(t.numpy())


def _from_numpy(a, like: torch.Tensor) -> torch.Tensor:
    out = torch.from_numpy(np.ascontiguousarray(a))
    return out.to(dtype=like.dtype)


_FAMILY_PARAMS = ("scale", "nu")


def _split_params(params: dict):
    """(forward-only options such as ``method``/``K``, family parameters for the VJP)."""
    fam = {k: v for k, v in params.items() if k in _FAMILY_PARAMS}
    opts = {k: v for k, v in params.items() if k not in _FAMILY_PARAMS}
    return opts, fam


class _PerturbedBase(torch.autograd.Function):
    _forward_fn = None   # name of the numeric forward function
    _vjp_fn = None       # the VJP it needs ("probs_vjp" runs as log_probs_vjp of g * p)

    @staticmethod
    def _apply_engine(name, x_np, *args, **kw):
        return getattr(_numeric, name)(x_np, *args, **kw)

    @classmethod
    def _forward(cls, ctx, x, family, dim, params):
        params = dict(params)
        _, vjp_params = _split_params(params)
        # the engine works along its last axis: move ``dim`` there and back
        xm = x.movedim(dim, -1)
        out = cls._apply_engine(cls._forward_fn, _to_numpy(xm), family, axis=-1, **params)
        out_t = _from_numpy(out, x).movedim(-1, dim)
        # the backward needs the scores, and (probabilities) the forward's output
        ctx.save_for_backward(x, out_t)
        ctx.family = family
        ctx.dim = dim
        ctx.vjp_params = vjp_params
        return out_t

    @classmethod
    def _backward(cls, ctx, grad_out):
        x, out = ctx.saved_tensors
        dim = ctx.dim
        mu = _to_numpy(x.movedim(dim, -1))
        cot = _to_numpy(grad_out.movedim(dim, -1))
        if cls._vjp_fn == "probs_vjp":
            # J_p^T g = J_logp^T (g * p) (dp_i = p_i dlog p_i) with the saved p: a one-hot
            # g (a loss on one entry per row) stays one-hot, and the engine's one-hot
            # path then needs no second forward pass
            cot = cot * _to_numpy(out.movedim(dim, -1))
        grad = cls._apply_engine("log_probs_vjp", mu, cot, ctx.family, axis=-1, **ctx.vjp_params)
        grad_t = _from_numpy(grad, x).movedim(-1, dim)
        return grad_t, None, None, None


class PerturbedSoftmaxFunction(_PerturbedBase):
    """autograd.Function: forward ``numeric.probs``, backward ``numeric.probs_vjp``.

    ``PerturbedSoftmaxFunction.apply(x, family, dim, params_items)`` with
    ``params_items`` a tuple of ``(name, value)`` pairs; prefer
    :func:`perturbed_softmax`.
    """

    _forward_fn = "probs"
    _vjp_fn = "probs_vjp"

    @staticmethod
    def forward(ctx, x, family, dim, params):
        return PerturbedSoftmaxFunction._forward(ctx, x, family, dim, params)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        return PerturbedSoftmaxFunction._backward(ctx, grad_out)


class PerturbedLogSoftmaxFunction(_PerturbedBase):
    """autograd.Function: forward ``numeric.log_probs``, backward ``numeric.log_probs_vjp``."""

    _forward_fn = "log_probs"
    _vjp_fn = "log_probs_vjp"

    @staticmethod
    def forward(ctx, x, family, dim, params):
        return PerturbedLogSoftmaxFunction._forward(ctx, x, family, dim, params)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        return PerturbedLogSoftmaxFunction._backward(ctx, grad_out)


def _validate(x, family, dim, params):
    _check_tensor(x)
    d = _check_dim(x, dim)
    # bind the family now so a bad name / parameter fails before any work,
    # with the engine's own message (ValueError listing names, etc.)
    _, fam_params = _split_params(params)
    _get_family(family, **fam_params)
    return d


def _native_gumbel(fn, x, family, d, params):
    """Gumbel noise is softmax: ``torch.softmax`` / ``torch.log_softmax`` of ``x / scale``,
    differentiated by torch itself, or None when the engine must answer (another family,
    other options, or a ``+inf`` score: the engine gives ``1/k`` to the ``k`` infinite
    scores, the limit of growing ties, where torch's softmax gives NaN)."""
    if not (isinstance(family, str) and family == "gumbel" and set(params) <= {"scale"}):
        return None
    if bool((x == float("inf")).any()):
        return None
    z = x.to(torch.float32) if x.dtype in _UPCAST else x
    scale = params.get("scale", 1.0)
    if scale != 1:
        z = z / scale
    out = (torch.log_softmax if fn is PerturbedLogSoftmaxFunction else torch.softmax)(z, d)
    return out.to(x.dtype)


def _apply(fn, x, family, dim, params):
    d = _validate(x, family, dim, params)
    native = _native_gumbel(fn, x, family, d, params)
    if native is not None:
        return native
    items = tuple(sorted(params.items()))
    if x.dim() == 0:
        # a 0-d tensor is one score vector of length 1 (as torch.softmax treats it)
        return fn.apply(x.reshape(1), family, 0, items).reshape(())
    return fn.apply(x, family, d, items)


def perturbed_softmax(x: torch.Tensor, family: Any = "normal", dim: int = -1, **params: Any) -> torch.Tensor:
    """Perturbed-argmax probabilities of the scores ``x`` along ``dim``.

    ``p_i = P[argmax_j (x_j + eps_j) = i]`` with ``eps_j`` iid from ``family``
    (a registry name such as ``"normal"``, ``"gumbel"``, ``"cauchy"``,
    ``"student_t"`` or a :class:`numeric.NumericFamily`); ``params`` are the family's
    parameters (``scale``, ``nu``) and optionally ``method`` for the forward
    algorithm.  Differentiable (first order) with the engine's O(n) VJP.

    >>> import torch
    >>> perturbed_softmax(torch.tensor([0.0, 0.0]), family="cauchy")
    tensor([0.5000, 0.5000])
    """
    return _apply(PerturbedSoftmaxFunction, x, family, dim, params)


def perturbed_log_softmax(x: torch.Tensor, family: Any = "normal", dim: int = -1,
                          **params: Any) -> torch.Tensor:
    """``log`` of :func:`perturbed_softmax`, computed in log space.

    Use it for negative log-likelihood losses: ``F.nll_loss(perturbed_log_softmax(logits), y)``.
    With ``family="gumbel"`` it equals ``torch.log_softmax``.

    >>> import torch
    >>> perturbed_log_softmax(torch.tensor([0.0, 0.0]), family="normal").exp()
    tensor([0.5000, 0.5000])
    """
    return _apply(PerturbedLogSoftmaxFunction, x, family, dim, params)


class PerturbedSoftmax(torch.nn.Module):
    """``nn.Module`` wrapper: ``PerturbedSoftmax(family="normal", dim=-1, log=False, **params)``.

    Applies :func:`perturbed_softmax` (or :func:`perturbed_log_softmax` when
    ``log=True``) along ``dim``.  Family and parameters are validated at
    construction.  Has no learnable parameters.

    >>> import torch
    >>> m = PerturbedSoftmax("normal", dim=1, log=True)
    >>> m(torch.zeros(2, 4)).exp()
    tensor([[0.2500, 0.2500, 0.2500, 0.2500],
            [0.2500, 0.2500, 0.2500, 0.2500]])
    """

    def __init__(self, family: Any = "normal", dim: int = -1, log: bool = False, **params: Any) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        _, fam_params = _split_params(params)
        _get_family(family, **fam_params)
        self.family = family
        self.dim = int(dim)
        self.log = bool(log)
        self.params = dict(params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = perturbed_log_softmax if self.log else perturbed_softmax
        return fn(x, self.family, self.dim, **self.params)

    def extra_repr(self) -> str:
        fam = self.family if isinstance(self.family, str) else getattr(self.family, "name", "custom")
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        return f"family={fam!r}, dim={self.dim}, log={self.log}{extra}"
