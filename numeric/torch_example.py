"""Worked example: a normal-noise softmax in a classifier.

A tiny PyTorch classifier whose output layer is the *normal-noise*
perturbed softmax

    p_i(x) = P[ argmax_j (f_j(x) + eps_j) = i ],   eps_j iid N(0, 1)

instead of the usual softmax (which is the Gumbel-noise case).  The model is
trained by minimising the negative log-likelihood ``-log p_y(x)``, computed
with :func:`numeric.torch.perturbed_log_softmax`; its gradient is the numeric
engine's O(n) vector-Jacobian product, no sampling involved.

The data set is generated here: three Gaussian blobs in the plane (seeded),
so the run is deterministic and takes a few seconds on a CPU::

    python -m numeric.torch_example            # prints the loss per step
    python -m numeric.torch_example --steps 30

>>> run = train_classifier(steps=5, seed=0)
>>> len(run.losses)
5
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from numeric.torch import perturbed_log_softmax, perturbed_softmax

__all__ = ["make_blobs", "train_classifier", "ClassifierRun", "main"]


def make_blobs(n_per_class: int = 16, n_classes: int = 3, spread: float = 1.0, seed: int = 0):
    """Toy data: ``n_classes`` Gaussian blobs with centres on a circle of radius 2.

    Returns ``(X, y)``: float64 features of shape ``(n_per_class * n_classes, 2)``
    and int64 labels.  Deterministic for a given ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    angles = torch.arange(n_classes, dtype=torch.float64) * (2 * torch.pi / n_classes)
    centres = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    X = centres.repeat_interleave(n_per_class, dim=0)
    X = X + spread * torch.randn(X.shape, generator=gen, dtype=torch.float64)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    perm = torch.randperm(len(y), generator=gen)
    return X[perm], y[perm]


@dataclass
class ClassifierRun:
    """Result of :func:`train_classifier`."""

    losses: list = field(default_factory=list)   # training NLL before each step
    accuracy: float = 0.0                          # final training accuracy (argmax of p)
    model: torch.nn.Module | None = None
    family: str = "normal"


def train_classifier(steps: int = 15, seed: int = 0, family: str = "normal", hidden: int = 16,
                     lr: float = 0.05, n_per_class: int = 16, verbose: bool = False, **params) -> ClassifierRun:
    """Train a 2-16-3 MLP with a perturbed-softmax output layer; return the losses.

    Loss: ``mean_k -log p_{y_k}(x_k)`` with ``log p`` from
    ``perturbed_log_softmax(logits, family=family, **params)``; optimiser Adam.
    """
    X, y = make_blobs(n_per_class=n_per_class, seed=seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 3)
    ).to(torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    run = ClassifierRun(model=model, family=family)
    for step in range(steps):
        opt.zero_grad()
        logp = perturbed_log_softmax(model(X), family=family, dim=-1, **params)
        loss = torch.nn.functional.nll_loss(logp, y)
        loss.backward()
        opt.step()
        run.losses.append(float(loss.detach()))
        if verbose:
            print(f"step {step:3d}  loss {run.losses[-1]:.6f}")
    with torch.no_grad():
        p = perturbed_softmax(model(X), family=family, dim=-1, **params)
        run.accuracy = float((p.argmax(dim=-1) == y).double().mean())
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m numeric.torch_example",
        description="Train a tiny classifier with a normal-noise softmax; print the loss per step.",
        epilog="example: python -m numeric.torch_example --steps 15 --family normal",
    )
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", default="normal")
    args = ap.parse_args(argv)
    run = train_classifier(steps=args.steps, seed=args.seed, family=args.family, verbose=True)
    print(f"final training accuracy {run.accuracy:.3f} (chance 0.333)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
