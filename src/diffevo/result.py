"""What a run returns: :class:`OptimizeResult`, and :func:`verdict` on the stop criteria."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OptimizeResult", "verdict"]


class OptimizeResult(dict):
    """scipy-style result: a dict whose keys are also attributes.

    Keys set by diffevo:

    * ``x`` (D,): best point ever evaluated; ``fun``: its objective value.
    * ``success`` (bool), ``status`` (0 success, 1 budget exhausted, 2 ftarget not
      reached, 3 stopped by the callback, 4 interrupted, 5 no finite value seen; see
      :func:`verdict`), ``message`` (str), ``stop`` (dict of the criteria that fired
      -> their thresholds).
    * ``nit``: generations run, ``nfev``: objective evaluations, ``nrestarts``.
    * ``population`` (popsize, D): the last population evaluated (clipped to the
      bounds); ``population_fun`` (popsize,): its values.
    * ``x0_estimate`` (popsize, D): the latest x0 (denoised) estimate of every member.
    * ``history``: a :class:`diffevo.History` (per-generation arrays).
    * ``modes`` (from :func:`diffevo.minimize` / :func:`~diffevo.maximize`): the distinct
      optima of the final populations of every attempt, best first, each a dict ``x`` (D,),
      ``fun``, ``size`` (members in its basin), ``polished`` (refined by the local method;
      see :mod:`diffevo.polish`); ``x``/``fun`` above are then the best of the polished
      modes and of every evaluated point, and ``nfev`` counts polishing too.
    * ``seed``: the seed the run started from.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __dir__(self):
        return list(self.keys())

    def __repr__(self) -> str:
        if not self:
            return "OptimizeResult()"
        width = max(map(len, self.keys())) + 1
        lines = []
        for k, v in self.items():
            if isinstance(v, np.ndarray) and v.size > 8:
                text = f"array of shape {v.shape}"
            else:
                text = repr(v).replace("\n", "\n" + " " * (width + 2))
            lines.append(f"{k.rjust(width)}: {text}")
        return "\n".join(lines)


def verdict(stop: dict, ftarget: float | None, *, found: bool = True) -> tuple[bool, int, str]:
    """``(success, status, message)`` from the stop criteria that fired.

    Args:
        stop: ``{criterion: threshold}`` as returned by ``DiffusionEvolution.stop()``
            (an empty dict: the run is still going); the runner adds ``'callback'``
            ``'interrupted'`` and ``'error'``.
        ftarget: the target value of the run, or None.
        found: whether any finite objective value was seen (no success without one).

    Returns:
        success (bool), status (-1 running, 0 success, 1 budget exhausted,
        2 ftarget not reached, 3 stopped by the callback, 4 interrupted, 5 no finite
        value seen) and a one-line message.
    """
    if not stop:
        return False, -1, "running"
    names = ", ".join(sorted(stop))
    if "interrupted" in stop:
        return False, 4, f"interrupted ({stop['interrupted']}); the result holds the best so far"
    if "error" in stop:
        return False, 4, f"stopped by an error ({stop['error']}); the result holds the best so far"
    if not found:
        return False, 5, (f"stopped ({names}) without a single finite objective value: every "
                          "evaluation gave NaN or inf")
    if "ftarget" in stop:
        return True, 0, f"ftarget {ftarget!r} reached"
    if "callback" in stop:
        return False, 3, "stopped by the callback"
    if ftarget is not None:
        return False, 2, f"stopped ({names}) before reaching ftarget {ftarget!r}"
    if "maxfev" in stop or "timeout" in stop:
        if "maxiter" in stop:
            return True, 0, "schedule completed"
        return False, 1, f"budget exhausted ({names}) before the schedule completed"
    if "maxiter" in stop:
        return True, 0, "schedule completed"
    return True, 0, f"converged ({names})"
