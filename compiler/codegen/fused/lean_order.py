"""An order of a fused loop's members that keeps fewer scratch blocks alive at once.

The writer (writer.py) gives each block value a scratch buffer from its member to its last
reader, so the order of the members decides how many buffers a block needs: each thread of a
loop allocates them, and for a loop that is one block (W7: N = 2048) they are whole vectors.
W7's Hessian-vector loop in the plan's order makes max(u, 0) and log(1 + e) for the value while
e, 1 + e and u >= 0 still wait for the sigmoid: 5 buffers. Made first, the sigmoid's mask and
quotient let e and 1 + e die into them: 3 buffers, the same ufunc calls.

The model: a value is alive from its member to its last reader (a view's readers are its
base's); an output lives in its own array, needing no scratch; a ufunc (or a Loop.into record)
may write over an input it reads for the last time, of the same size. The search is exact over
the sets of members made (a set fixes what is alive), memoised, looks only below the plan's
order's peak, and is given up past _ORDER_STATES sets (a wide loop keeps the plan's order:
over the goldens and the benchmarks 512 sets find the orders 2048 do, and a 47-member loop
gives up in about 10 ms). The model knows neither the rows of
outputs the writer lends to values nor the products a sum's einsum computes, so the writer
keeps this order only if the loop it writes needs fewer scratch bytes (writer.write_kernel).
"""
from __future__ import annotations

from ...core.ir import Node
from .peepholes import computed_late
from .plan import Kernel, _row_weight

_ORDER_STATES = 512  # sets of members made the search may visit: past that, the plan's order
_MAX_MEMBERS = 48  # (a loop this long has too many orders to search; its order stays)


def lean_order(k: Kernel, reusable) -> list[Node] | None:
    """k's members in an order whose peak of live scratch bytes is lower than the plan's order's,
    the plan's order wherever it is as good; None when there is none (or the search gave up).

    `reusable`: (input, output) pairs, the output taking over the input's memory
    (plan.reusable_inputs): every read of such an input stays before that output is written."""
    members = k.members
    n = len(members)
    if n < 3 or n > _MAX_MEMBERS:
        return None
    index = {m.id: x for x, m in enumerate(members)}
    outputs = {o.id for o in k.outputs}
    base = list(range(n))  # a view's reads are reads of the value it shows
    for x, m in enumerate(members):
        if m.op.is_view(m) and m.inputs and m.inputs[0].id in index:
            base[x] = base[index[m.inputs[0].id]]
    weight = [0 if (m.id in outputs or m.op.is_view(m)) else _row_weight(m) for m in members]
    before = [0] * n  # bit masks of member positions: what must be made before x
    readers = [0] * n
    for x, m in enumerate(members):
        for i in m.inputs:
            y = index.get(i.id)
            if y is not None:
                before[x] |= 1 << y
                readers[base[y]] |= 1 << x
    for i, o in reusable:  # the output's rows are the input's: all its readers come first
        if o.id not in index:
            continue
        for x, m in enumerate(members):
            if m is not o and any(j is i for j in m.inputs):
                before[index[o.id]] |= 1 << x
                if computed_late(m):  # (its sum may read i where it stands: it comes first too)
                    for r in range(n):
                        if any(j is m for j in members[r].inputs):
                            before[index[o.id]] |= 1 << r
    if any(before[x] & 1 << x for x in range(n)):
        return None  # (a member constrained after itself: keep the plan's order)
    forever = 0  # values read at the block's end: scatter parts and bases
    for p, b, _, _ in k.scatters:
        for v in (p, b):
            if v.id in index:
                forever |= 1 << base[index[v.id]]
    in_place = [bool(m.op.ufunc) or (m.op.loop is not None and m.op.loop.into) for m in members]
    full = (1 << n) - 1

    def alive(made: int) -> int:
        total = 0
        for y in _bits(made):
            if weight[y] and (readers[y] & ~made or (forever >> y) & 1):
                total += weight[y]
        return total

    def making(made: int, live: int, x: int) -> int:
        """Scratch bytes alive while x is made after `made` (live: those alive before)."""
        freed = 0
        if in_place[x]:
            after = made | 1 << x
            for y in _bits(before[x] & made):
                y = base[y]
                if weight[y] == weight[x] and not readers[y] & ~after and not (forever >> y) & 1:
                    freed = weight[y]
                    break
        return live + weight[x] - freed

    made, planned = 0, 0
    for x in range(n):
        if before[x] & ~made:
            return None  # (the plan's order breaks a constraint: cannot happen, kept safe)
        planned = max(planned, making(made, alive(made), x))
        made |= 1 << x
    best: dict[int, int] = {full: 0}

    def least_from(made: int) -> int:
        """The least peak from `made` to the end, or `planned` when it is not below that (the
        search looks only for better orders: a member whose making alone reaches it is skipped)."""
        got = best.get(made)
        if got is not None:
            return got
        if len(best) > _ORDER_STATES:
            raise _GiveUp
        live = alive(made)
        low = planned
        for x in range(n):
            if not (made >> x) & 1 and before[x] & ~made == 0:
                here = making(made, live, x)
                if here < low:
                    low = min(low, max(here, least_from(made | 1 << x)))
        best[made] = low
        return low

    try:
        least = least_from(0)
    except _GiveUp:
        return None
    if least >= planned:
        return None
    order, made = [], 0
    try:
        while made != full:  # the earliest member (in the plan's order) that keeps the least peak
            live = alive(made)
            x = next(x for x in range(n) if not (made >> x) & 1 and before[x] & ~made == 0
                     and max(making(made, live, x), least_from(made | 1 << x)) <= least)
            order.append(members[x])
            made |= 1 << x
    except _GiveUp:
        return None
    return order


class _GiveUp(Exception):
    pass


def _bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low

