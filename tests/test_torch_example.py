"""The worked example (numeric.torch_example) trains: loss falls, accuracy beats chance."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from numeric.torch_example import make_blobs, train_classifier  # noqa: E402


def test_toy_data_is_seeded_and_balanced():
    X1, y1 = make_blobs(n_per_class=20, seed=3)
    X2, y2 = make_blobs(n_per_class=20, seed=3)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert X1.shape == (60, 2) and torch.bincount(y1).tolist() == [20, 20, 20]
    assert not torch.equal(X1, make_blobs(n_per_class=20, seed=4)[0])


def test_normal_noise_classifier_learns():
    run = train_classifier(steps=15, seed=0, family="normal")
    losses = run.losses
    assert len(losses) == 15
    assert all(map(lambda v: v == v and v < float("inf"), losses))
    # NLL of a 3-class model starts near log 3 ~ 1.1; training must cut it clearly
    assert losses[-1] < 0.5 * losses[0], losses
    assert run.accuracy > 0.8, run.accuracy          # chance is 1/3
    # the output layer really is the normal-noise softmax (not torch.softmax)
    X, _ = make_blobs(n_per_class=5, seed=0)
    with torch.no_grad():
        logits = run.model(X)
    from numeric.torch import perturbed_softmax
    assert not torch.allclose(perturbed_softmax(logits, family="normal"), torch.softmax(logits, -1), atol=1e-3)


@pytest.mark.slow
def test_module_entry_point_prints_losses():
    out = subprocess.run([sys.executable, "-m", "numeric.torch_example", "--steps", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("step")]
    assert len(lines) == 2
    assert "accuracy" in out.stdout
