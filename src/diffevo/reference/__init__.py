"""The published-compatible surface (SPEC.md section 6), re-exported at the top level.

The call conventions of the paper's published code, on diffevo's kernels:
:class:`DiffEvo` (one-call optimiser), :class:`BayesianGenerator` and
:class:`LatentBayesianGenerator` (one generation each) and :class:`RandomProjection`
(a fixed latent code). Their argument names follow the published code (``h`` and
``kde_bandwidth`` for what the rest of diffevo calls ``bandwidth``; ``fitness`` for
the already mapped, non-negative weights). Nothing here is copied from it.
"""

from .diff_evo import DiffEvo
from .generators import BayesianGenerator, LatentBayesianGenerator, RandomProjection

__all__ = ["BayesianGenerator", "DiffEvo", "LatentBayesianGenerator", "RandomProjection"]
