"""datamill: scaling laws and compute-aware mixture recommendation (plain Python, no Beam).

* :func:`fit_chinchilla` — Chinchilla parametric law, Besiroglu et al. fitting procedure;
  :func:`scaling.chinchilla.fit_chinchilla_runs` applies their run selection (default).
* :func:`data_constrained_loss` — Muennighoff et al. data-constrained law (published defaults).
* :mod:`scaling.quality_quantity` — Goyal et al. quality-quantity law with repetition decay;
  :mod:`scaling.pools_fit` fits per-pool utilities from proxy runs (``datamill fit-pools``).
* :mod:`scaling.asymptote` — compare recipes by their asymptote E.
* :mod:`scaling.small_scale` — DataDecide-style ranking of mixtures from small runs.
* :mod:`scaling.recommend` — the recommender behind ``datamill recommend``.
"""

from scaling.chinchilla import ChinchillaFit, chinchilla_loss, compute_optimal, fit_chinchilla
from scaling.data_constrained import data_constrained_loss, fit_data_constrained

__all__ = [
    "ChinchillaFit",
    "chinchilla_loss",
    "compute_optimal",
    "data_constrained_loss",
    "fit_chinchilla",
    "fit_data_constrained",
]
