"""Cache-blocked fusion of elementwise chains (NumPy backend).

A chain of elementwise operations over a large array, done one NumPy call at a time,
streams every intermediate through memory. Here such a chain becomes a *kernel*: a loop
over blocks of rows, small enough that every intermediate of a block stays in cache
(`_BLOCK_BYTES`, a module constant, bounds what one block touches), each operation
written as a ufunc call into a reused scratch buffer. Reductions that end the chain are
accumulated block by block; values used after the chain are written into full arrays.
The blocks of a big enough kernel run on a small thread pool (NumPy releases the GIL
inside ufuncs).

Planning (this file) groups nodes; writer.KernelWriter writes the loop; peepholes.py says
where NumPy has a faster way for a node in its context.

A node can join a kernel when it keeps the kernel's row axis: an elementwise op whose
shape has the kernel's row count first, a reduction or softmax that leaves axis 0 alone;
not onehot, whose label check is one call outside. In NumPy's loops (NUMPY_RULES) also a
convolution of the rows' images (Loop.images: conv, its x row-aligned, its w whole), and the
gradient of its w, a sum over the images, as a sink (its other input, x, a member or an outside
value the kernel does not make). (cross_entropy never reaches a
kernel: the loops exist at -O1, where it is expanded into primitives.) A sum/max/min
that reduces axis 0 ends the kernel as a *sink*. A node never joins a kernel it depends
on through an outside value, so kernels and statements can always be put in an order
that works.

A cheap value a later kernel reads may be made again there rather than stored (_recompute:
which values to store is a minimum cut, so a GELU's forward loop stores z and tanh(...), not the
four products its backward reads); such a member belongs to its own kernel and is listed in the
later one's `recomputed`.

A slice cotangent that only index_grads_onto reads is *scattered*: the kernel that makes it
adds each block into the rows of the base it belongs to (`g[1:][i:j] += d`), so no full
array of it is made and the base is written in cache (issue 18, W13). The base must be a
temporary the onto may write over, computed before that kernel (or by it, when the slice
keeps the rows whole); a kernel whose blocks add into shifted rows runs on one thread
(neighbouring blocks share a row of the base).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

from ...core.ir import Node
from ...core.primitive import Cost, Kind, ops
from ...core.types import Dim, dim_prod
from .peepholes import computed_late, reads_after_writing

MIN_ELEMENTS = 1 << 14  # a kernel over fewer (literal) elements is not worth its loop


@dataclass
class Kernel:
    index: int
    rows: object  # the row count (int or Dim)
    members: list[Node] = field(default_factory=list)
    sinks: list[Node] = field(default_factory=list)
    outputs: list[Node] = field(default_factory=list)  # members used after the loop: full arrays
    # member id -> _row_aligned_inputs(member), worked out once when planning (the plan, the
    # memory reuse and the writer each read it for every member); one dict for a plan's kernels
    aligned: dict[int, list[bool]] = field(default_factory=dict)
    # (part, base, index items, sign): a member added into base[items] block by block, never
    # written whole (the index_grads_onto reading it is done by then)
    scatters: list[tuple[Node, Node, tuple, int]] = field(default_factory=list)
    serial: bool = False  # its blocks add into shifted rows: one thread
    # members an earlier kernel computes too (and keeps, or not): this one makes them again from
    # what it can read, rather than that kernel storing them (_recompute)
    recomputed: set[int] = field(default_factory=set)

    @property
    def scattered(self) -> set[int]:
        return {p.id for p, _, _, _ in self.scatters}

    @property
    def nodes(self) -> list[Node]:
        return self.members + self.sinks


def _rows(n: Node):
    return n.shape[0] if n.type.rank >= 1 else None


def _row_aligned_inputs(n: Node) -> list[bool]:
    """For each input: does its axis 0 run along the node's rows (a sink's: along the loop's)?"""
    if n.op.loop is not None and n.op.loop.images is not None:  # conv: x's images, not w's outputs
        return list(n.op.loop.images.aligned)
    if n.op.elementwise:
        rank = n.type.rank
        return [i.type.rank == rank for i in n.inputs]
    return [i.type.rank >= 1 for i in n.inputs]  # row-wise ops: reductions, softmax


def _member_op(n: Node) -> bool:
    if n.type.rank < 1 or n.shape[0] == 1:
        return False
    prim = n.op
    if prim.elementwise:
        return True
    if prim.kind is Kind.REDUCE:  # sum, prod, max, min, logsumexp along other axes than 0
        return 0 not in n.attr("axes") and n.inputs[0].type.rank >= 1
    if n.op.loop is not None and n.op.loop.rowwise:  # softmax along an axis other than the rows
        return n.attr("axis") != 0
    return False  # onehot too: one call over all labels checks them once, not once per block


def _sink_op(n: Node) -> bool:
    # a reduction over the rows whose per-block partials are combined after the loop
    x = n.inputs[0] if n.inputs else None
    return (n.op.loop is not None and n.op.loop.combine is not None and n.op.loop.images is None and 0 in n.attr("axes")
            and x.type.rank >= 1 and x.shape[0] != 1)


def _image_member(n: Node) -> bool:
    # a convolution of a block's images (Loop.images): one GEMM call per block
    loop = n.op.loop
    return (loop is not None and loop.images is not None and loop.combine is None and n.shape[0] != 1
            and all(i.shape[0] == n.shape[0] for i, al in zip(n.inputs, loop.images.aligned) if al))


def _image_sink(n: Node) -> bool:
    # the gradient of a convolution's w: a sum over the images, each block's added after the loop
    loop = n.op.loop
    if loop is None or loop.images is None or loop.combine is None:
        return False
    rows = {i.shape[0] for i, al in zip(n.inputs, loop.images.aligned) if al}
    return len(rows) == 1 and 1 not in rows


@dataclass(frozen=True)
class PlanRules:
    """Which nodes a backend's kernels take: members (over the rows) and sinks (reductions over
    the rows, combined after the loop). NumPy's blocked loops take what ufuncs and reductions
    can do block by block; a compiled backend's are in kernels/program.py (rules)."""

    member: Callable[[Node], bool]
    sink: Callable[[Node], bool]
    # slice cotangents added into their base block by block (Kernel.scatters): only a writer
    # that writes them does (fused/writer.py); any other computes them whole
    scatter: bool = False
    # cheap values a later loop makes again instead of reading them stored (Kernel.recomputed):
    # only a writer that writes them does
    remake: bool = False


# what any backend's loops may take (compiled kernels narrow it further: kernels/program.py)
SHARED_RULES = PlanRules(_member_op, _sink_op, scatter=True, remake=True)
# NumPy's loops also run convolutions block by block, a GEMM a block (Loop.images)
NUMPY_RULES = PlanRules(lambda n: _member_op(n) or _image_member(n), lambda n: _sink_op(n) or _image_sink(n),
                        scatter=True, remake=True)


def plan(order: list[Node], fn_outputs: list[Node], rules: PlanRules = NUMPY_RULES) -> list[Kernel]:
    """Group nodes into kernels, greedily in topological order.

    A kernel runs as one block, so it depends on everything any of its members reads.
    The graph `edges` (kernels and outside nodes, each to what it reads) is kept up to
    date, and a node joins a kernel only if none of its outside inputs can reach that
    kernel: then the kernels and the other statements always have an order."""
    group: dict[int, int] = {}  # member or sink id -> kernel index
    kernels: list[Kernel] = []
    # an item of `edges`: an outside node, by its id, or kernel k, as -1 - k (ints: cheap to hash)
    edges: dict[int, set[int]] = {}
    aligned_of: dict[int, list[bool]] = {}

    def item(n: Node) -> int:
        k = group.get(n.id)
        return n.id if k is None else -1 - k

    def reaches(start: int, target: int) -> bool:
        seen, stack = set(), [start]
        while stack:
            x = stack.pop()
            if x == target:
                return True
            if x not in seen:
                seen.add(x)
                stack.extend(edges.get(x, ()))
        return False

    def can_join(n: Node, k: int, aligned: list[bool]) -> bool:
        if kernels[k].rows != n.shape[0]:
            return False
        for j, al in zip(n.inputs, aligned):
            g = group.get(j.id)
            if g == k:
                if j in kernels[k].sinks or not al:
                    return False  # a sink is complete only after the loop; rows must line up
            elif (j.inputs or g is not None) and reaches(item(j), -1 - k):
                return False  # an outside input computed from this kernel's values (a leaf reaches nothing)
        return True

    def join(n: Node, k: int) -> None:
        group[n.id] = k
        into = edges.setdefault(-1 - k, set())
        for i in n.inputs:
            g = group.get(i.id)
            if g is None:
                into.add(i.id)
            elif g != k:
                into.add(-1 - g)

    def can_end(n: Node, k: int) -> bool:
        """Sink n may end kernel k: its first input a member, its other ones too (row-aligned, not
        sinks) or outside values not computed from the kernel's (a convolution's x)."""
        first = n.inputs[0]
        if group.get(first.id) != k or first in kernels[k].sinks:
            return False
        for j, al in zip(n.inputs[1:], _row_aligned_inputs(n)[1:]):
            g = group.get(j.id)
            if g == k:
                if j in kernels[k].sinks or not al:
                    return False
            elif al and (j.type.rank < 1 or j.shape[0] != kernels[k].rows):
                return False
            elif (j.inputs or g is not None) and reaches(item(j), -1 - k):
                return False
        return True

    for n in order:
        if rules.sink(n) and n.inputs[0].id in group and can_end(n, group[n.inputs[0].id]):
            k = group[n.inputs[0].id]  # nothing outside to wait for
            kernels[k].sinks.append(n)
            aligned_of[n.id] = _row_aligned_inputs(n)
            join(n, k)
            continue
        if rules.member(n):
            aligned = _row_aligned_inputs(n)
            choice = None
            for i, al in zip(n.inputs, aligned):
                k = group.get(i.id)
                if k is not None:
                    if al and can_join(n, k, aligned):
                        choice = k
                        break
            if choice is None:
                # no input's kernel can take it (none, or one it must run after, like the forward
                # loop a backward product reads): the latest one over the same rows (one pass, not two)
                choice = next((k for k in reversed(range(len(kernels))) if can_join(n, k, aligned)), None)
            if choice is None:
                choice = len(kernels)
                kernels.append(Kernel(choice, n.shape[0], [], aligned=aligned_of))
            kernels[choice].members.append(n)
            aligned_of[n.id] = aligned
            join(n, choice)
            continue
        if n.inputs:  # (a leaf has no entry: it reaches nothing)
            edges[n.id] = {item(i) for i in n.inputs}
    _move_to_users(order, kernels, group, fn_outputs)
    keep = [k for k in kernels if _worth_it(k)]
    users: set[int] = set()
    out_ids = {o.id for o in fn_outputs}
    if rules.scatter:
        _scatter(order, kernels, {k.index for k in keep}, group, out_ids, edges, reaches, item)
    if rules.remake:
        _recompute(order, keep, group, out_ids)
    inside = {n.id for k in keep for n in k.nodes}
    scattered = {nid for k in keep for nid in k.scattered}
    for n in order:
        if n.id in inside:
            continue  # (a kernel's reads: below)
        reads = n.inputs[:1] if scatter_done(n, scattered) else n.inputs
        for i in reads:
            if i.id in inside:
                users.add(i.id)
    for k in keep:
        own = {n.id for n in k.nodes}
        for n in k.nodes:
            for i in n.inputs:
                if i.id in inside and i.id not in own:
                    users.add(i.id)
    for k in keep:
        k.outputs = [m for m in k.members if (m.id in users or m.id in out_ids) and m.id not in k.recomputed]
    for new_index, k in enumerate(keep):
        k.index = new_index
    return keep


def fresh_array(n: Node) -> bool:
    """n is an array its own call allocates (elementwise, allocating or row-wise: softmax), not
    a view of another: writing over it, once nothing reads it any more, touches nothing else."""
    fresh = n.op.elementwise or n.op.allocates or (n.op.loop is not None and n.op.loop.rowwise)
    return not n.is_leaf and not n.is_literal and n.type.rank >= 1 and not n.op.is_view(n) and fresh


def _scatter(order, kernels, kept, group, out_ids, edges, reaches, item) -> None:
    """Each index_grads_onto whose base only it reads, a temporary, and whose every part is a
    kernel member only it reads, row-aligned with the base (its index a slice of step 1 along
    axis 0): its parts are added into the base by their kernels (Kernel.scatters)."""
    uses: dict[int, int] = {}
    readers: dict[int, list[Node]] = {}
    for n in order:
        for i in n.inputs:
            uses[i.id] = uses.get(i.id, 0) + 1
            readers.setdefault(i.id, []).append(n)
    for n in order:
        if n.op is not ops.index_grads_onto:
            continue
        base, parts = n.inputs[0], n.inputs[1:]
        kb = group.get(base.id)
        if base.id in out_ids or not fresh_array(base) or any(p is base for p in parts):
            continue
        # read by n only, or else only in its own loop (over by the time anything is added)
        if any(r is not n and (kb not in kept or group.get(r.id) != kb) for r in readers[base.id]):
            continue
        plans = []
        for p, items, sign in zip(parts, n.attr("parts"), n.attr("signs")):
            k = group.get(p.id)
            if k not in kept or p in kernels[k].sinks or p.id in out_ids or uses.get(p.id) != parts.count(p):
                break
            if any(it[0] != "s" for it in items) or (items and items[0][3] != 1) or p.type.rank != base.type.rank:
                break  # (an integer or new axis: rows no longer line up)
            whole_rows = not items or items[0][1:3] == (None, None)
            if group.get(base.id) == k:
                if not whole_rows:
                    break  # the base's rows of a later block are not written yet
            elif reaches(item(base), -1 - k):
                break  # the base is computed from this kernel's values
            plans.append((k, p, items, sign, whole_rows))
        else:
            for k, p, items, sign, whole_rows in plans:
                kernels[k].scatters.append((p, base, items, sign))
                kernels[k].serial |= not whole_rows
                if group.get(base.id) != k:
                    edges.setdefault(-1 - k, set()).add(item(base))  # the kernel now waits for the base


def _move_to_users(order: list[Node], kernels: list[Kernel], group: dict[int, int], fn_outputs) -> None:
    """A member read only by one later kernel, from inputs that kernel can read too (kernel
    outputs or outside values), is computed there instead: a mask like h > 0 is cheaper to
    recompute than to store and read back."""
    if len(kernels) < 2:
        return  # (no other kernel to move to)
    users: dict[int, set[int]] = {}
    for n in order:
        for i in n.inputs:
            users.setdefault(i.id, set()).add(n.id)
    out_ids = {o.id for o in fn_outputs}
    for k in kernels:
        member_ids = {n.id for n in k.members}  # (kept as members move out)
        for m in list(reversed(k.members)):
            us = users.get(m.id, set())
            if not us or m.id in out_ids or m.op.elementwise is False:
                continue
            targets = {group.get(u) for u in us}
            if len(targets) != 1 or None in targets or k.index in targets:
                continue
            dest = kernels[next(iter(targets))]
            if dest.rows != k.rows:
                continue
            # its member inputs must be values the other kernel can read (used outside k anyway)
            member_inputs = [i for i in m.inputs if group.get(i.id) == k.index]
            if any(not (users.get(i.id, set()) - member_ids) for i in member_inputs):
                continue
            if any(i in k.sinks for i in member_inputs):
                continue
            k.members.remove(m)
            member_ids.discard(m.id)
            dest.members.insert(0, m)
            group[m.id] = dest.index


_RECOMPUTE_LIMIT = 24  # members one kernel's readers may make again: more is not cheap any more


def _recompute(order: list[Node], kernels: list[Kernel], group: dict[int, int], out_ids: set[int]) -> None:
    """Cheap elementwise members that later kernels read are made again there, from values
    those kernels can read, when that stores less: a GELU's backward reads 0.5 z, 1 + t,
    1 - t^2 and 3 z^2, four arrays the forward loop would write, where z and t are two
    (issue 18, W12).

    Which values to store is a minimum cut (as AOTAutograd's partitioner): each member a later
    kernel reads (over the same rows, along them, and nothing else outside reads it) must be
    stored or made from stored ones; a cheap elementwise member can be made again, a costly
    or row-wise one (tanh, a row sum) cannot; an array from before the loop can be kept for
    the later kernel (a little dearer than a member of the same size: fewer ops made again).
    Each value costs the bytes of a row. The cut is taken when it stores less than the values
    read; a member its own kernel then no longer reads moves to the (first) kernel reading it."""
    if len(kernels) < 2:
        return
    index = {k.index: k for k in kernels}
    aligned = kernels[0].aligned
    home = {n.id: k.index for k in kernels for n in k.members if n.id not in k.recomputed}
    readers: dict[int, list[Node]] = {}
    for n in order:
        for i in dict.fromkeys(n.inputs):
            readers.setdefault(i.id, []).append(n)
    bases = {b.id for k in kernels for _, b, _, _ in k.scatters}
    parts = {pid for k in kernels for pid in k.scattered}
    for k in kernels:
        mine = {m.id: m for m in k.members}  # (with those it makes again: they can be made anywhere after it)
        inner = {n.id for n in k.nodes}
        outside: dict[int, set] = {}  # needed member id -> the kernels reading it (None: something else)
        for m in k.members:
            if m.id in k.recomputed:
                continue
            for r in readers.get(m.id, ()):
                if r.id not in inner:
                    outside.setdefault(m.id, set()).add(home.get(r.id))
            if m.id in out_ids:
                outside.setdefault(m.id, set()).add(None)

        def movable(v: Node, dests: set) -> bool:
            if None in dests or v.id in parts or v.id in bases:
                return False
            for d in dests:
                if d == k.index or index[d].rows != k.rows:
                    return False
                for r in readers[v.id]:
                    if home.get(r.id) == d and r in index[d].members:
                        if not all(al for i, al in zip(r.inputs, aligned[r.id]) if i is v):
                            return False
            return True

        wanted = [mine[vid] for vid, dests in outside.items() if movable(mine[vid], dests)]
        if not wanted:
            continue
        fixed = outside.keys() - {v.id for v in wanted}  # stored whatever is chosen
        cut = _min_cut(wanted, mine, fixed, bases)
        if cut is None:
            continue
        kept, saved = cut
        copies: dict[int, set[int]] = {}  # destination kernel -> member ids it makes again
        for v in wanted:
            made = _made_from(v, mine, kept | fixed)
            for d in outside[v.id]:
                copies.setdefault(d, set()).update(made)
        if sum(len(c) for c in copies.values()) > _RECOMPUTE_LIMIT or not saved:
            continue
        # members the kernel still needs: stored ones and what its other members read
        live = fixed | {i for i in kept if i in mine}
        for n in reversed(k.nodes):
            if n.id in live or n in k.sinks:
                live.update(i.id for i in n.inputs)
        for d in sorted(copies):
            dest = index[d]
            dest.recomputed |= copies[d]
            _place_copies(dest, [mine[i] for i in copies[d]])
        for m in list(k.members):
            if m.id not in live:
                k.members.remove(m)
                if m.id in k.recomputed:
                    k.recomputed.discard(m.id)  # (made where it lives, and by the kernels that need it)
                    continue
                d = min(x for x in copies if m.id in copies[x])
                index[d].recomputed.discard(m.id)
                group[m.id] = home[m.id] = d


def _min_cut(wanted: list[Node], mine: dict[int, Node], fixed: set[int], bases: set[int]):
    """(ids of the values to store, whether that stores fewer bytes than `wanted`), or None.

    A flow network: each value x is an edge x_in -> x_out of its row bytes (scaled, plus one
    for an array from outside the kernel), each read an edge of no limit; what cannot be
    made again hangs from the source, each wanted value feeds the sink."""
    big = 1 << 60
    scale = 4
    cap: dict = {}
    adj: dict = {}

    def edge(a, b, c):
        cap[(a, b)] = cap.get((a, b), 0) + c
        cap.setdefault((b, a), 0)
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)

    seen: dict[int, Node] = {}
    stack = list(wanted)
    while stack:
        x = stack.pop()
        if x.id in seen:
            continue
        seen[x.id] = x
        if x.id in bases:
            return None  # (a base a loop adds into: its value changes)
        w = _row_weight(x) * scale
        if x.id in fixed:
            edge("S", ("o", x.id), big)  # stored anyway: free to read
            continue
        if x.id not in mine:
            edge("S", ("i", x.id), big)
            edge(("i", x.id), ("o", x.id), w + 1)
            continue
        edge(("i", x.id), ("o", x.id), w)
        if not _cheap(x):
            edge("S", ("i", x.id), big)
            continue
        for i in x.inputs:
            if i.is_leaf:
                continue  # (an argument or a literal: there to read anywhere)
            edge(("o", i.id), ("i", x.id), big)
            stack.append(i)
    for v in wanted:
        edge(("o", v.id), "T", big)
    total = 0
    while True:  # augmenting paths, shortest first (Edmonds-Karp)
        prev = {"S": None}
        queue = ["S"]
        for a in queue:
            if a == "T":
                break
            for b in adj.get(a, ()):
                if b not in prev and cap[(a, b)] > 0:
                    prev[b] = a
                    queue.append(b)
        if "T" not in prev:
            break
        path, b = [], "T"
        while prev[b] is not None:
            path.append((prev[b], b))
            b = prev[b]
        push = min(cap[e] for e in path)
        if push >= big:
            return None  # (nothing to cut: cannot happen, each value is an edge of finite capacity)
        for a, b in path:
            cap[(a, b)] -= push
            cap[(b, a)] += push
        total += push
    reached = set(prev)
    kept = {x for x in seen if ("i", x) in reached and ("o", x) not in reached}
    return kept, sum(_row_weight(seen[x]) for x in kept) < sum(_row_weight(v) for v in wanted)


def _made_from(v: Node, mine: dict[int, Node], kept: set[int]) -> set[int]:
    """The members a later kernel makes to have v, given the values stored (none when v is one)."""
    if v.id in kept:
        return set()
    made: set[int] = set()
    stack = [v]
    while stack:
        x = stack.pop()
        if x.id in made:
            continue
        made.add(x.id)
        stack.extend(i for i in x.inputs if i.id in mine and i.id not in kept)
    return made


def _cheap(n: Node) -> bool:
    return n.op.elementwise and n.op.cost in (Cost.CHEAP, Cost.FREE) and not n.op.is_view(n)


def _row_weight(n: Node) -> int:
    """Bytes a row of n takes, a size symbol counted as 1024 (they are large, most often)."""
    w = n.dtype.itemsize
    for d in n.shape[1:]:
        w *= d if isinstance(d, int) else 1024
    return w


def _place_copies(dest: Kernel, copies: list[Node]) -> None:
    """Each copy just before the first member of dest that needs it (its inputs before it)."""
    wanted = {c.id: c for c in copies if c not in dest.members}
    placed: list[Node] = []

    def put(x: Node) -> None:
        if x.id in wanted:
            del wanted[x.id]
            for i in x.inputs:
                put(i)
            placed.append(x)

    for m in dest.members:
        for i in m.inputs:
            put(i)
        placed.append(m)
    for s in dest.sinks:
        put(s.inputs[0])
    dest.members[:] = placed


def _worth_it(k: Kernel) -> bool:
    if len(k.nodes) < 2:
        return False
    biggest = 0
    for n in k.members:
        size = dim_prod(n.shape)
        if not isinstance(size, int):
            break  # a symbolic size (the first member's, most often): no need to look further
        biggest = max(biggest, size)
    else:
        if biggest < MIN_ELEMENTS:
            return False
    return isinstance(k.rows, Dim) or (isinstance(k.rows, int) and k.rows > 1)


def schedule(order: list[Node], kernels: list[Kernel]) -> list:
    """Statements and kernels in an order that respects every dependency, otherwise as in `order`."""
    # an item is a node outside the kernels, by its id, or kernel k, as -1 - k (ints: cheap to
    # hash and compare, and a function of thousands of nodes has an item per node)
    owner = {n.id: -1 - k.index for k in kernels for n in k.nodes if n.id not in k.recomputed}
    key_of: dict[int, int] = {}  # node id -> its item
    items: dict[int, int] = {}  # item -> priority (first original position)
    for p, n in enumerate(order):
        key = key_of[n.id] = owner.get(n.id, n.id)
        if key not in items:
            items[key] = p
    node_of = {n.id: n for n in order}
    preds: dict[int, set] = {key: set() for key in items}
    succs: dict[int, set] = {key: set() for key in items}
    for n in order:
        me = key_of[n.id]
        for i in n.inputs:
            src = key_of[i.id]
            if src != me:
                preds[me].add(src)
                succs[src].add(me)
    for k in kernels:  # what a kernel makes again, it makes from values made before it
        me = -1 - k.index
        made = {n.id for n in k.members} if k.recomputed else ()
        for n in k.members:
            if n.id in k.recomputed:
                for i in n.inputs:
                    src = key_of[i.id]
                    if src != me and i.id not in made:
                        preds[me].add(src)
                        succs[src].add(me)
    for k in kernels:  # a scattering kernel adds into its bases: after they are made
        me = -1 - k.index
        for _, base, _, _ in k.scatters:
            src = key_of[base.id]
            if src != me:
                preds[me].add(src)
                succs[src].add(me)
    ready = [(items[key], key) for key in items if not preds[key]]
    heapq.heapify(ready)
    out = []
    while ready:
        _, key = heapq.heappop(ready)
        out.append(kernels[-1 - key] if key < 0 else node_of[key])
        for s in succs[key]:
            preds[s].discard(key)
            if not preds[s]:
                heapq.heappush(ready, (items[s], s))
    if len(out) != len(items):  # pragma: no cover - plan() never makes a cycle
        raise AssertionError("kernel schedule has a cycle")
    return out


def reusable_inputs(items: list, kernels: list[Kernel], keep: set[int]) -> dict[int, list[tuple[Node, Node]]]:
    """For each kernel, (input, output) pairs where the output can take over the input's memory.

    The input must be a temporary this function made (not an argument, a result or a
    view, unless a reshape or transpose of a temporary only it reads), read by nothing
    after this kernel, row-aligned wherever the kernel reads it,
    with the output's shape and dtype, and read by no member after the one that writes
    the output (a block is written in place, so a later read would see the new value).
    Fewer fresh arrays: less memory and fewer page faults."""
    where = {id(item): idx for idx, item in enumerate(items)}
    found = []  # per kernel: (kernel, candidates, last_read, bad)
    wanted: set[int] = set()
    for k in kernels:
        members = {m.id for m in k.members}
        reads = []  # (position, member, input, aligned) for each input a member reads that the kernel does not make
        for p, m in enumerate(k.members):
            for i, al in zip(m.inputs, k.aligned[m.id]):
                if i.id not in members and not i.is_leaf:
                    reads.append((p, m, i, al))
        if not reads:
            continue  # (a loop over arguments only)
        reader_pos: dict[int, int] = {}
        for p, m in enumerate(k.members):
            for i in m.inputs:
                reader_pos[i.id] = p  # (the last member reading it)
        candidates: dict[int, Node] = {}
        last_read: dict[int, int] = {}
        bad: set[int] = set()
        for p, m, i, al in reads:
            when = max(p, reader_pos.get(m.id, p)) if computed_late(m) else p
            candidates[i.id] = i
            last_read[i.id] = max(last_read.get(i.id, -1), when)
            if not al or i.type.rank != m.type.rank or i.shape[0] != k.rows:
                bad.add(i.id)
        for s in k.sinks:
            for i in s.inputs:
                if i.id not in members:
                    bad.add(i.id)
        found.append((k, candidates, last_read, bad))
        wanted |= candidates.keys()
    if not wanted:
        return {}
    readers: dict[int, set[int]] = {}  # candidate id -> the items reading it
    reads: dict[int, int] = {}  # node id -> how many times nodes read it
    for idx, item in enumerate(items):
        nodes = item_nodes(item)
        for n in nodes:
            for i in n.inputs:
                reads[i.id] = reads.get(i.id, 0) + 1
                if i.id in wanted:
                    readers.setdefault(i.id, set()).add(idx)
    result: dict[int, list[tuple[Node, Node]]] = {}
    for k, candidates, last_read, bad in found:
        me = {where[id(k)]}
        # those any output could take (the conditions that do not depend on the output)
        free = [(iid, i) for iid, i in candidates.items()
                if iid not in bad and iid not in keep and _owns_memory(i, keep, reads) and readers.get(iid) == me]
        if not free:
            continue
        position = {m.id: p for p, m in enumerate(k.members)}
        taken: set[int] = set()
        pairs = []
        for o in k.outputs:
            for iid, i in free:
                # a ufunc (or an expression assigned whole) may read what it overwrites; a select
                # (several calls, writer.KernelWriter.select) only its first value, read first
                limit = position[o.id]
                if reads_after_writing(o) and (i is not o.inputs[1] or any(x is i for x in (o.inputs[0], o.inputs[2]))):
                    limit -= 1
                if iid in taken or i.shape != o.shape or i.dtype != o.dtype or last_read[iid] > limit:
                    continue
                taken.add(iid)
                pairs.append((i, o))
                break
        if pairs:
            result[k.index] = pairs
    return result


def _owns_memory(i: Node, keep: set[int], reads: dict[int, int]) -> bool:
    """Whether writing over i's array touches nothing else anyone reads: i is not a view, or
    it relabels (reshape, transpose) a temporary that only it reads, such as the GEMM result a
    convolution reshapes to [N, O, H, W]."""
    while i.op.is_view(i):
        if not i.op.relabels:
            return False
        i = i.inputs[0]
        if i.id in keep or i.is_leaf or reads.get(i.id, 0) != 1:
            return False
    return True


def scatter_done(n: Node, scattered: set[int]) -> bool:
    """n is an index_grads_onto whose every part a kernel added into its base (Kernel.scatters):
    it reads only its base, and is that array."""
    return n.op is ops.index_grads_onto and all(p.id in scattered for p in n.inputs[1:])


def item_nodes(item) -> tuple | list:
    """The nodes of a scheduled item: a kernel's, or the node itself."""
    return item.nodes if isinstance(item, Kernel) else (item,)


def last_reads(items: list) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Per node id: the position of the last item (node or kernel) reading it; and per node id
    the views made of it (its memory may be read later through them)."""
    last: dict[int, int] = {}
    view_of: dict[int, list[int]] = {}
    for at, item in enumerate(items):
        for m in item_nodes(item):
            if m.is_leaf:
                continue
            for i in m.inputs:
                last[i.id] = at
            if m.op.is_view(m):
                for i in m.inputs:
                    view_of.setdefault(i.id, []).append(m.id)
    return last, view_of
