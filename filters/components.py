"""Connected components of a duplicate graph (plain Python, no Beam).

Every node is labelled with the smallest node id of its component:
:class:`UnionFind` / :func:`union_find_labels`: in-memory union-find (path halving, union by
smaller root id) over any hashable ids, the reference in tests and benchmarks for
:func:`filters.lsh.component_arrays` (what the ``minhash_dedup`` stage uses).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable

Edge = tuple[Hashable, Hashable]


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, x):
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra  # the smaller id stays root, so roots are component minima

    def labels(self) -> dict:
        return {x: self.find(x) for x in list(self.parent)}


def union_find_labels(edges: Iterable[Edge]) -> dict:
    """node -> smallest node of its component, for every node that appears in ``edges``."""
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    return uf.labels()


def components(labels: dict) -> dict:
    """label -> sorted member list."""
    out: dict = defaultdict(list)
    for node, lab in labels.items():
        out[lab].append(node)
    return {k: sorted(v) for k, v in out.items()}
