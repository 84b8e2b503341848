"""Which optimiser a run uses: ``method=`` name -> the class that runs it.

Every strategy is a class taking :class:`diffevo.DiffusionEvolution`'s constructor
arguments (``popsize, x0, *, ndim, sigma0, bounds, seed, **settings``) and exposing
``ask`` / ``tell`` / ``stop`` / ``result`` / ``history``; a class that also has a
static ``tell_batch(optimizers, fitnesses)`` gets R runs told in one call.
Strategies that need optional dependencies are imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

__all__ = ["STRATEGIES", "get"]

#: method name -> (module, class name, the pip extra its dependencies come with)
STRATEGIES: dict[str, tuple[str, str, str | None]] = {
    "diffevo": ("diffevo.optimizer", "DiffusionEvolution", None),
    "hades": ("diffevo.hades", "HADES", "hades"),
    "charles": ("diffevo.hades", "CHARLES", "hades"),
}


def get(method: str) -> Callable:
    """The strategy class registered as ``method``.

    Raises:
        ValueError: naming ``method`` for an unknown name.
        ImportError: naming the pip extra when the strategy's dependencies are missing.
    """
    if not isinstance(method, str) or method not in STRATEGIES:
        raise ValueError(f"method must be one of {', '.join(map(repr, STRATEGIES))}; got {method!r}")
    module, name, extra = STRATEGIES[method]
    try:
        return getattr(import_module(module), name)
    except (ImportError, AttributeError) as err:
        if extra is None:
            raise
        raise ImportError(f"method={method!r} needs the {extra!r} extra (torch): "
                          f"pip install 'diffevo[{extra}]' ({type(err).__name__}: {err})") from err
