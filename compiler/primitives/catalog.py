"""Every rule module, imported once: importing this fills the registry (core/primitive.py).

The pipeline imports it before any stage runs; tests that build IR directly import it too.
The order matters only for readability of `tapeless` listings: registration order is
the order of this list.
"""
from __future__ import annotations

from . import misc  # noqa: F401  (the leaves and constructors first)
from . import elementwise, reduce, linalg, shape, nn  # noqa: F401
from . import forms, builtin_functions  # noqa: F401  (the -O1 forms and the language's built-ins)
from ..core.primitive import REGISTRY, ops  # noqa: F401  (re-exported for callers that need the table)
