"""Connected components: union-find and large-star/small-star on crafted and random graphs."""

import random

from filters.components import (
    components,
    large_star,
    small_star,
    star_components,
    star_label,
    union_find_labels,
)


def test_chain_star_and_singletons():
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(200)]
    star = [("s000", f"s{i:03d}") for i in range(1, 50)] + [
        (f"t{i:03d}", "t000") for i in range(1, 9)
    ]
    single = [("z", "z")]  # a self loop is no edge
    edges = chain + star + single
    uf = union_find_labels([e for e in edges if e[0] != e[1]])
    st, _, converged = star_components(edges)
    assert converged and uf == st
    comps = components(st)
    assert sorted(len(v) for v in comps.values()) == [9, 50, 201]
    assert st["n200"] == "n000" and st["s049"] == "s000" and st["t008"] == "t000"
    assert "z" not in st


def test_random_graphs_agree_with_union_find():
    rng = random.Random(3)
    for _ in range(150):
        n = rng.randint(2, 80)
        edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(1, 120))]
        edges = [e for e in edges if e[0] != e[1]]
        st, _, converged = star_components(edges)
        assert converged
        assert st == union_find_labels(edges)


def test_star_operations():
    assert large_star(5, [3, 7, 9]) == [(7, 3), (9, 3)]
    assert large_star(2, [3, 7]) == [(3, 2), (7, 2)]
    assert small_star(5, [3, 1, 7]) == [(5, 1), (3, 1)]
    assert small_star(1, [3, 7]) == []
    assert star_label(4, [1]) == (1, True)
    assert star_label(4, [1, 2]) == (1, False)  # not a star yet
    assert star_label(1, [4, 9]) == (1, True)


def test_round_limit_reports_non_convergence():
    chain = [(i, i + 1) for i in range(500)]
    labels, rounds, converged = star_components(chain, max_rounds=2)
    assert rounds == 2 and not converged
    # labels never join different components: each is a node of the same chain, <= node
    assert all(lab <= node for node, lab in labels.items())


def test_component_arrays_match_union_find():
    import numpy as np

    from filters.components import component_arrays

    rng = np.random.default_rng(3)
    n = 300
    edges = [tuple(sorted(e)) for e in rng.integers(0, n, size=(200, 2)).tolist()]
    comp, size = component_arrays(n, [a for a, _ in edges], [b for _, b in edges])
    uf = union_find_labels(edges)
    for v in range(n):
        assert comp[v] == uf.get(v, v)
    counts = {}
    for v in range(n):
        counts[comp[v]] = counts.get(comp[v], 0) + 1
    assert all(size[v] == counts[comp[v]] for v in range(n))
    c0, s0 = component_arrays(0, [], [])
    assert c0.size == s0.size == 0
    c, s = component_arrays(3, [], [])
    assert c.tolist() == [0, 1, 2] and s.tolist() == [1, 1, 1]
