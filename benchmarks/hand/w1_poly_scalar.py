"""W1 by hand: 5x^3 + 2x^2 + 4x + 8 and its derivative 15x^2 + 4x + 4 on one float64 scalar.

Plain NumPy float64 scalar arithmetic in Horner form (the fewest scalar operations:
3 multiplies and 3 adds for the value, 2 and 2 for the derivative). No argument checks.
"""
import numpy as np


def poly_grad(x):
    """(value, (d_x,)) for a numpy.float64 scalar x."""
    return ((5.0 * x + 2.0) * x + 4.0) * x + 8.0, ((15.0 * x + 4.0) * x + 4.0,)


def reference(x):
    x = float(x)
    return np.float64(5 * x**3 + 2 * x**2 + 4 * x + 8), (np.float64(15 * x**2 + 4 * x + 4),)
