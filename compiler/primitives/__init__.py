"""THE table: one record per primitive, grouped in files by kind, and what rules are written with.

    catalog.py           imports every rule module once (the pipeline does): the registry fills
    rule_shapes.py       unary, binary, linear, bilinear, nondifferentiable, constructor, leaf
    algebra.py           smart constructors rules use: add, mul, where, unbroadcast, masks
    common.py            type-rule, emission and SymPy helpers
    elementwise.py math_functions.py special.py scans.py reduce.py linalg.py triangular.py factorized.py eigen.py svd.py qr.py windows.py conv.py shape.py nn.py misc.py   the records
    forms.py             stable forms of composites, spelled in primitives at -O1
    builtin_functions.py the language's built-in functions and operators, and how each lowers
    builtin_docs.py      what docs/builtins.md says that the sources do not: groups, notes, examples

The record and the registry themselves are in core/primitive.py (a leaf module), so this
package's __init__ imports nothing.
"""
