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
not onehot, whose label check is one call outside. (cross_entropy never reaches a
kernel: the loops exist at -O1, where it is expanded into primitives.) A sum/max/min
that reduces axis 0 ends the kernel as a *sink*. A node never joins a kernel it depends
on through an outside value, so kernels and statements can always be put in an order
that works.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

from ...core.ir import Node
from ...core.primitive import Kind
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

    @property
    def nodes(self) -> list[Node]:
        return self.members + self.sinks


def _rows(n: Node):
    return n.shape[0] if n.type.rank >= 1 else None


def _row_aligned_inputs(n: Node) -> list[bool]:
    """For each input: does its axis 0 run along the node's rows?"""
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
    return (n.op.loop is not None and n.op.loop.combine is not None and 0 in n.attr("axes")
            and x.type.rank >= 1 and x.shape[0] != 1)


@dataclass(frozen=True)
class PlanRules:
    """Which nodes a backend's kernels take: members (over the rows) and sinks (reductions over
    the rows, combined after the loop). NumPy's blocked loops take what ufuncs and reductions
    can do block by block; a compiled backend's are in kernels/program.py (rules)."""

    member: Callable[[Node], bool]
    sink: Callable[[Node], bool]


NUMPY_RULES = PlanRules(_member_op, _sink_op)


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

    for n in order:
        if rules.sink(n) and n.inputs[0].id in group and n.inputs[0] not in kernels[group[n.inputs[0].id]].sinks:
            k = group[n.inputs[0].id]  # its one input is a member: nothing outside to wait for
            kernels[k].sinks.append(n)
            join(n, k)
            continue
        if rules.member(n):
            aligned = _row_aligned_inputs(n)
            choice, from_kernel = None, False
            for i, al in zip(n.inputs, aligned):
                k = group.get(i.id)
                if k is not None:
                    from_kernel = True
                    if al and can_join(n, k, aligned):
                        choice = k
                        break
            if choice is None and not from_kernel:
                # no input from a kernel: join the latest one over the same rows (one pass, not two)
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
    inside = {n.id for k in keep for n in k.nodes}
    out_ids = {o.id for o in fn_outputs}
    for n in order:
        for i in n.inputs:
            if i.id in inside and (n.id not in inside or group[n.id] != group[i.id]):
                users.add(i.id)
    for k in keep:
        k.outputs = [m for m in k.members if m.id in users or m.id in out_ids]
    for new_index, k in enumerate(keep):
        k.index = new_index
    return keep


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
    owner = {n.id: -1 - k.index for k in kernels for n in k.nodes}
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
        nodes = item.nodes if isinstance(item, Kernel) else (item,)
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
