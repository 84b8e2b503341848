"""Neuroevolution: evolve neural-network policies for gymnasium tasks (``diffevo[rl]``).

* :class:`MLPPolicy`: an MLP controller as a flat parameter vector, run for a whole
  population by one stacked matmul per layer.
* :class:`VectorRollout`: one episode per member, all members in one gymnasium vector env.
* :class:`EpisodeFitness`: a population fitness function (episode return) for any env id.
* :func:`evolve`: one call that trains a policy with the paper's loop, the library's
  :class:`diffevo.DiffusionEvolution`, or CMA-ES, then evaluates the best policy on
  fresh episodes (:func:`evaluate`).

Example::

    from diffevo.rl import evolve
    res = evolve("CartPole-v1", seed=0)        # the paper's settings
    print(res.eval_mean_reward)                # mean of 10 fresh episodes
"""

from __future__ import annotations

from .evolve import RLResult, evolve
from .fitness import EpisodeFitness, evaluate
from .methods import METHODS, paper_weights
from .policy import MLPPolicy
from .rollout import Episodes, VectorRollout

__all__ = ["METHODS", "EpisodeFitness", "Episodes", "MLPPolicy", "RLResult", "VectorRollout",
           "evaluate", "evolve", "paper_weights"]
