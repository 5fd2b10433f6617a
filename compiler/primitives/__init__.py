"""The primitive table. Importing this package registers every primitive.

See base.py for the record and the facets each primitive carries.
"""
from . import elementwise, linalg, misc, nn, reduce, shape  # noqa: F401  (registration)
from ..core.primitive import REGISTRY, Primitive, get

__all__ = ["REGISTRY", "Primitive", "get"]
