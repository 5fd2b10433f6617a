"""Products written into the array of a value that is dead by then (NumPy's `out=`), and the
statements moved earlier so that a value dies in time.

W12's backward reads h last in dw2 = h.T @ do, after dh = do @ w2.T has made a fresh array of
h's shape: run dw2 first and dh can be written over h (the hand version does; a fresh 4 MiB array
is page faults and, at the peak, memory). A record says its emit takes such an array
(Primitive.out_arg); this file says which array, if any, and which reads to move.

An array qualifies when the function made it (an elementwise result or a fused loop's output:
fresh_array; a product's result; a reshape of one of those that alone reads it), it is no
argument or result, its memory lives on under no other name (a loop's output taking it over, a
scatter's base, a statement writing over its input, a loop's carry), and nothing reads it, or a
view of it, from the product on.

A constant array (`full`: a gradient's zeros) takes a dead array too, filled: W10's gradient of
the input projections of every step ([T, B, H], 3 MiB) was a fresh np.zeros whose pages the
backward loop then faulted in one by one, while the projections' own array, of that type and
dead after the forward loop, was already in memory (the hand version writes over it).
"""
from __future__ import annotations

from ..core.ir import Node, group_key
from ..core.primitive import Cost, ops
from ..primitives.loops import parts
from .fused.plan import Kernel, fresh_array, item_nodes

_MOVE_LIMIT = 4  # statements moved for one product: a few reads (a transpose and its product)


def memory_reads(items: list) -> dict[int, int]:
    """Per node id: the position of the last item reading its memory, itself or through views of it.
    A group written as statements (a loop) reads its inputs where its first member is: the others
    are written with it (fused/plan.last_reads, but for those)."""
    last: dict[int, int] = {}
    view_of: dict[int, list[int]] = {}
    groups: set[tuple] = set()
    for at, item in enumerate(items):
        if isinstance(item, Node) and item.op.write is not None:
            key = group_key(item)
            if key in groups:
                continue  # (written with the first member, which read the same inputs)
            groups.add(key)
        for m in item_nodes(item):
            if m.is_leaf:
                continue
            for i in m.inputs:
                last[i.id] = at
            if m.op.is_view(m):
                for i in m.inputs:
                    view_of.setdefault(i.id, []).append(m.id)

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
        if op is ops.for_loop and not _body_returns_views(item):
            out |= {i.id for i in parts(item)[1]}  # a loop's carries (what it only reads is free after it)
        elif op.write is not None or (op.loop is not None and op.loop.into):
            out |= {i.id for i in item.inputs}  # (a loop's carries, an op writing over its input)
        elif item.inputs and not op.elementwise and op.cost is not Cost.CONTRACTION and not op.allocates:
            out.add(item.inputs[0].id)  # (index_grads_onto and the like may write over their first input)
    return out


def _body_returns_views(loop: Node) -> bool:
    """A loop whose body may return a value sharing memory with what it reads (x[t] as a carry):
    the loop's result may then be a view of an array it only reads."""
    body = parts(loop)[0]
    return any(o.is_param or o.op.is_view(o) for o in body.outputs)


def candidates(items: list, keep: set[int], aliased: set[int]) -> dict[int, Node]:
    uses: dict[int, int] = {}
    for item in items:
        for n in item_nodes(item):
            for i in n.inputs:
                uses[i.id] = uses.get(i.id, 0) + 1
    return {n.id: n for item in items for n in item_nodes(item)
            if _owned(n, uses) and n.id not in keep and n.id not in aliased}


def _owned(n: Node, uses: dict[int, int]) -> bool:
    """n's memory is an array the function made for n alone: fresh, a product's result, or a
    reshape (relabelling view) of one that nothing else reads."""
    if fresh_array(n) or (not n.is_leaf and n.type.rank >= 1 and not n.op.is_view(n) and n.op.cost is Cost.CONTRACTION
                          and len(n.inputs) >= 2):  # (a product of two operands: always a new array)
        return True
    return (n.op.is_view(n) and n.op.relabels and n.type.rank >= 1 and len(n.inputs) == 1
            and uses.get(n.inputs[0].id) == 1 and _owned(n.inputs[0], uses))


def is_relabelled(n: Node) -> bool:
    """n is a candidate through a view (its layout may not be C order: only a fill may take it)."""
    return n.op.is_view(n)


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
