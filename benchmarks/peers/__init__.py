"""Optional peer implementations (PyTorch eager, jax.jit) of the benchmark workloads.

Neither library is required: the runner imports these modules inside try/except and skips a
peer with a note when its library is not importable. Each module exposes AVAILABLE (bool),
WHY (the import error, if any), describe() (a one-line version/thread summary) and one
builder per workload, `w1(inputs)`, `w2(inputs)`, ...: it takes the workload's NumPy inputs,
converts them once (outside the timed region) and returns (call, to_numpy), where `call()`
is the timed zero-argument function (it waits for the result: jax dispatches asynchronously)
and `to_numpy(result)` gives [value, grad_1, grad_2, ...] as NumPy arrays for the checks.
"""
