"""Connected components of a duplicate graph (plain Python, no Beam).

Every node is labelled with the smallest node id of its component:

* :func:`component_arrays`: scipy's sparse connected components over integer node indices, what
  the ``minhash_dedup`` stage uses (memory O(nodes + edges), no Python loop per node);
* :class:`UnionFind` / :func:`union_find_labels`: in-memory union-find (path halving, union by
  smaller root id) over any hashable ids, the reference in tests and benchmarks.
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


def component_arrays(n: int, i, j):
    """Connected components of the graph on nodes ``0..n-1`` with edges ``(i[k], j[k])``.

    Returns ``(comp, size)``: ``comp[v]`` is the smallest node of ``v``'s component and
    ``size[v]`` the component's size (1 for isolated nodes). Uses
    ``scipy.sparse.csgraph.connected_components``: memory O(n + edges), no Python loop.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, lab = connected_components(graph, directed=False)
    first = np.full(lab.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, lab, np.arange(n, dtype=np.int64))
    counts = np.bincount(lab)
    return first[lab], counts[lab]
