"""Connected components: scipy component arrays against union-find on crafted and random
graphs."""

import random

from filters.components import components, union_find_labels


def test_union_find_on_chain_star_and_singletons():
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(200)]
    star = [("s000", f"s{i:03d}") for i in range(1, 50)] + [
        (f"t{i:03d}", "t000") for i in range(1, 9)
    ]
    uf = union_find_labels(chain + star)
    comps = components(uf)
    assert sorted(len(v) for v in comps.values()) == [9, 50, 201]
    assert uf["n200"] == "n000" and uf["s049"] == "s000" and uf["t008"] == "t000"


def test_component_arrays_agree_with_union_find_on_random_graphs():
    from filters.lsh import component_arrays

    rng = random.Random(3)
    for _ in range(150):
        n = rng.randint(2, 80)
        edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(1, 120))]
        edges = [e for e in edges if e[0] != e[1]]
        comp, _ = component_arrays(n, [a for a, _ in edges], [b for _, b in edges])
        uf = union_find_labels(edges)
        assert [int(comp[v]) for v in range(n)] == [uf.get(v, v) for v in range(n)]


def test_component_arrays_match_union_find():
    import numpy as np

    from filters.lsh import component_arrays

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
