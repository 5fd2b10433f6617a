"""Hand-written NumPy versions of the benchmark workloads: the bar tapeless is measured against.

One module per workload. Each exposes the fast, expert-written function the runner times
and `reference(...)`: a naive float64 formula of the same mathematics, used only to check
that every implementation (hand, tapeless, torch, jax) computes the same values.

Contract shared with tapeless's `F_grad` (so times and peak memory compare like with like):
every call takes the same inputs and returns *freshly allocated* results, value first, then
one gradient per parameter; inside a call the hand version reuses its buffers (in-place
ufuncs with out=, chunked loops over small scratch buffers) instead of allocating temporaries.
"""
