"""Train the one-layer model of layer.tl with plain gradient descent.

    python examples/train_layer.py

The module is compiled from layer.tl on first use (and cached); the gradient
step accumulates into the parameters' gradient buffers with out=, as
PyTorch's .grad does, and zeroes them between steps (zero_grad()).
"""
from pathlib import Path

import numpy as np

from tapeless.runtime import load

m = load(Path(__file__).with_name("layer.tl"))

rng = np.random.default_rng(0)
x = rng.standard_normal((256, 784)).astype(np.float32)
true_w = rng.standard_normal((784, 10)).astype(np.float32) / 28
y = (x @ true_w > 0).astype(np.float32)

w = np.zeros((784, 10), np.float32)
b = np.zeros(10, np.float32)
grad_w, grad_b = np.zeros_like(w), np.zeros_like(b)
for step in range(101):
    grad_w[...] = 0                      # zero_grad()
    grad_b[...] = 0
    loss, _, _ = m.layer_grad(x, y, w, b, out=(grad_w, grad_b))
    w -= 0.5 * grad_w
    b -= 0.5 * grad_b
    if step % 20 == 0:
        print(f"step {step:3d}  loss {loss:.4f}")
