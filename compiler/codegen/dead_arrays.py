"""Products written into the array of a value that is dead by then (NumPy's `out=`), and the
statements moved earlier so that a value dies in time.

W12's backward reads h last in dw2 = h.T @ do, after dh = do @ w2.T has made a fresh array of
h's shape: run dw2 first and dh can be written over h (the hand version does; a fresh 4 MiB array
is page faults and, at the peak, memory). A record says its emit takes such an array
(Primitive.out_arg); this file says which array, if any, and which reads to move.

An array qualifies when the function made it (an elementwise result or a fused loop's output:
fresh_array), it is no argument or result, its memory lives on under no other name (a loop's
output taking it over, a scatter's base, a statement writing over its input, a loop's carry), and
nothing reads it, or a view of it, from the product on.
"""
from __future__ import annotations

from ..core.ir import Node
from ..core.primitive import Cost
from .fused.plan import Kernel, fresh_array, item_nodes, last_reads

_MOVE_LIMIT = 4  # statements moved for one product: a few reads (a transpose and its product)


def memory_reads(items: list) -> dict[int, int]:
    """Per node id: the position of the last item reading its memory, itself or through views of it."""
    last, view_of = last_reads(items)

    def reach(nid: int, seen: set) -> int:
        at = last.get(nid, -1)
        for v in view_of.get(nid, ()):
            if v not in seen:
                seen.add(v)
                at = max(at, reach(v, seen))
        return at

    return {nid: reach(nid, set()) for nid in list(last)}


def shared(items: list, reuse: dict, kernels: list[Kernel], keep: set[int]) -> set[int]:
    """Ids of values whose memory may live on under another value's name (a view of them
    returned is one: memory_reads sees only the views read)."""
    out = {i.id for pairs in reuse.values() for i, _ in pairs}
    out |= {b.id for k in kernels for _, b, _, _ in k.scatters}
    for item in reversed(items):
        if isinstance(item, Kernel):
            continue
        op = item.op
        if op.is_view(item):
            if item.id in keep or item.id in out:
                out |= {i.id for i in item.inputs}
            continue
        if op.write is not None or (op.loop is not None and op.loop.into):
            out |= {i.id for i in item.inputs}  # (a loop's carries, an op writing over its input)
        elif item.inputs and not op.elementwise and op.cost is not Cost.CONTRACTION and not op.allocates:
            out.add(item.inputs[0].id)  # (index_grads_onto and the like may write over their first input)
    return out


def candidates(items: list, keep: set[int], aliased: set[int]) -> dict[int, Node]:
    return {n.id: n for item in items for n in item_nodes(item)
            if fresh_array(n) and n.id not in keep and n.id not in aliased}


def move_reads_earlier(items: list, keep: set[int], aliased: set[int]) -> list:
    """Before each product that could write into a dead array, the reads that keep an array of its
    shape alive after it, when they can run there (their inputs are made before it)."""
    arrays = candidates(items, keep, aliased)
    if not arrays:
        return items
    by_kind: dict[tuple, list[Node]] = {}
    for n in arrays.values():
        by_kind.setdefault((n.dtype, n.shape), []).append(n)
    items = list(items)
    last = memory_reads(items)
    made: set[int] = set()
    at = 0
    while at < len(items):
        n = items[at]
        if isinstance(n, Kernel) or not n.op.writes_into(n):
            made.update(m.id for m in item_nodes(n))
            at += 1
            continue
        for x in by_kind.get((n.dtype, n.shape), ()):
            if x.id not in made or last.get(x.id, -1) < at or any(i is x for i in n.inputs):
                continue  # (not made yet, or dead already: nothing to move)
            moved = _movable(items, at, x, made)
            if moved is not None:
                ids = {id(m) for m in moved}
                items = items[:at] + moved + [it for it in items[at:] if id(it) not in ids]
                made.update(m.id for m in moved)
                at += len(moved)
                last = memory_reads(items)
                break
        made.add(n.id)
        at += 1
    return items


def _movable(items: list, s: int, x: Node, made: set[int]) -> list | None:
    """The statements after position s reading x (or views of it), with the views they read, when
    they can all run before s; None when one cannot."""
    group: list[Node] = []
    ids: set[int] = {x.id}
    for item in items[s + 1:]:
        nodes = item_nodes(item)
        if not any(i.id in ids for m in nodes for i in m.inputs):
            continue
        if isinstance(item, Kernel) or item.op.write is not None:
            return None
        group.append(item)
        if item.op.is_view(item):
            ids.add(item.id)
    if not group or len(group) > _MOVE_LIMIT:
        return None
    inside = {m.id for m in group}
    for m in group:
        if not all(i.is_literal or i.id in made or i.id in inside for i in m.inputs):
            return None
    # a view of x must be read by the group only: after the move, nothing later reads x's memory
    views = ids - {x.id}
    for item in items[s + 1:]:
        if not (isinstance(item, Node) and item.id in inside):
            if any(i.id in views for m in item_nodes(item) for i in m.inputs):
                return None
    return group
