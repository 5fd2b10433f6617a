"""Every rule module, imported once: importing this fills the registry (core/primitive.py).

The pipeline imports it before any stage runs; a module that names records at import time
(codegen/fused/peepholes.py) imports it too. Registration follows this order: the leaves
and constructors, then by kind.
"""
# isort: skip_file
from __future__ import annotations

from . import misc  # noqa: F401  (param, const, dim, full, eye, stop_gradient)
from . import elementwise  # noqa: F401
from . import math_functions  # noqa: F401  (more elementwise math: arcsin .. fmod)
from . import scans  # noqa: F401  (cumsum, cumprod, logcumsumexp, linscan, roll, argsort, ...)
from . import special  # noqa: F401  (erf .. j1: scipy.special)
from . import reduce  # noqa: F401
from . import linalg  # noqa: F401
from . import triangular  # noqa: F401  (tril, triu)
from . import factorized  # noqa: F401  (solve, inv, det, slogdet, cholesky, solve_triangular)
from . import spd  # noqa: F401  (logdet and cho_solve through a Cholesky factor; cho_inv)
from . import eigen  # noqa: F401  (eigh)
from . import svd, qr  # noqa: F401  (svd, qr)
from . import windows  # noqa: F401  (sliding windows: convolution and pooling)
from . import conv  # noqa: F401  (conv1d, conv2d: im2col by chunks of images, and its gradients)
from . import shape  # noqa: F401
from . import nn  # noqa: F401
from . import call  # noqa: F401  (a large fn's call, kept as a call)
from . import loops  # noqa: F401  (for loops; dyn_index, dyn_update)
from . import forms, folding, simplification  # noqa: F401  (the rule sets over them)
from . import builtin_functions  # noqa: F401  (the language's built-in functions)
from ..core.primitive import REGISTRY, ops  # noqa: F401  (re-exported for callers that need the table)
