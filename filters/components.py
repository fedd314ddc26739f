"""Connected components of a duplicate graph (plain Python, no Beam).

Two ways, with the same result (every node labelled with the smallest node id of its component):

* :class:`UnionFind`: in-memory union-find (path halving, union by smaller root id); the
  small-data path of the ``minhash_dedup`` stage and the reference in tests.
* the *large-star* / *small-star* operations of Kiveris et al. 2014, "Connected Components in
  MapReduce and Beyond" (SoCC '14). Each works on one node and its neighbour list, so a
  distributed runner applies it per key after a group-by-node; alternating them converges to
  a forest of stars in which every node points to its component's minimum node.
  :func:`star_components` iterates them in memory (used by tests to check the Beam rounds).
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


def large_star(node, neighbors: Iterable) -> list[Edge]:
    """Large-star at ``node``: link every neighbour larger than ``node`` to min(Γ(node) ∪ {node})."""
    nbrs = set(neighbors)
    nbrs.discard(node)
    if not nbrs:
        return []
    m = min(min(nbrs), node)
    return [(v, m) for v in sorted(nbrs) if v > node]


def small_star(node, neighbors: Iterable) -> list[Edge]:
    """Small-star at ``node``: link ``node`` and its smaller neighbours to the smallest of them."""
    smaller = {v for v in neighbors if v < node}
    if not smaller:
        return []
    m = min(smaller)
    out = [(node, m)]
    out.extend((v, m) for v in sorted(smaller) if v != m)
    return out


def star_label(node, neighbors: Iterable) -> tuple[object, bool]:
    """(label, converged_here): label = min(Γ ∪ {node}); a node of a star forest is either a
    root (no smaller neighbour) or a leaf (exactly one neighbour, smaller)."""
    nbrs = set(neighbors)
    nbrs.discard(node)
    if not nbrs:
        return node, True
    m = min(nbrs)
    if m > node:
        return node, True
    return m, len(nbrs) == 1


def adjacency(edges: Iterable[Edge]) -> dict:
    adj: dict = defaultdict(set)
    for a, b in edges:
        if a != b:
            adj[a].add(b)
            adj[b].add(a)
    return adj


def star_round(edges: Iterable[Edge], op) -> set[Edge]:
    out: set[Edge] = set()
    for node, nbrs in adjacency(edges).items():
        for a, b in op(node, nbrs):
            if a != b:
                out.add((min(a, b), max(a, b)))
    return out


def star_components(edges: Iterable[Edge], max_rounds: int = 50) -> tuple[dict, int, bool]:
    """Alternate large-star and small-star until nothing changes (or ``max_rounds``).

    Returns (node -> component minimum, rounds used, converged).
    """
    cur = {(min(a, b), max(a, b)) for a, b in edges if a != b}
    nodes = {x for e in cur for x in e}
    rounds, converged = 0, False
    while rounds < max_rounds:
        rounds += 1
        nxt = star_round(star_round(cur, large_star), small_star)
        if nxt == cur:
            converged = True
            break
        cur = nxt
    adj = adjacency(cur)
    labels = {n: star_label(n, adj.get(n, ()))[0] for n in nodes}
    return labels, rounds, converged


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
