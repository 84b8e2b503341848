"""One-call optimisation: :func:`minimize` and :func:`maximize` (scipy.optimize style).

Both are made by one factory from one typed signature and one docstring (below),
and call :func:`diffevo.runner.optimize`; the options they pass on are the fields
of :class:`diffevo._settings.Settings`, the same that :class:`diffevo.DiffusionEvolution`
takes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ._settings import with_options
from .result import OptimizeResult
from .runner import NOT_OPTIONS, optimize

__all__ = ["maximize", "minimize"]

P = ParamSpec("P")
R = TypeVar("R")


def _signature(fun: Callable, x0: Any = None, *, bounds: Any = None, ndim: int | None = None,
               sigma0: Any = None, args: tuple = (),
               popsize: int | None = None, maxiter: int | None = None, maxfev: int | None = None,
               ftarget: float | None = None, tolx: float | None = None, tolfun: float | None = None,
               timeout: float | None = None, vectorized: bool = False, executor: Any = None,
               chunksize: int | None = None, on_error: str = "raise",
               callback: Callable | None = None, progress: bool = False,
               restarts: int | str = "auto",
               restart_popsize_factor: float = 1.0, runs: int = 1, method: str = "diffevo",
               checkpoint: Any = None, checkpoint_every: int = 1, resume: Any = None,
               seed: Any = None, **options: Any) -> OptimizeResult | list[OptimizeResult]:
    """{verb} ``fun`` with Diffusion Evolution.

    Args:
        fun: the objective. ``fun(x, *args) -> float`` for one (D,) point, or with
            ``vectorized=True`` ``fun(X, *args) -> (N,)`` for a whole (N, D) population.
        x0: (D,) centre of the first population (default: the middle of ``bounds``,
            else the origin; then give ``ndim``).
        bounds: ``(low, high)`` for every coordinate, D ``(low, high)`` pairs, or an
            object with ``lb``/``ub``; the objective is evaluated on clipped points.
        ndim: D, needed only when neither x0 nor per-coordinate bounds give it.
        sigma0: scalar or (D,) scale of the first population (see DiffusionEvolution).
        args: extra positional arguments for fun (a tuple).
        popsize: members per generation (default 1024).
        maxiter: generations per run = the schedule's length (default 50): with popsize
            the same 51,200 evaluations as 512 x 100, and more members keep every basin.
        maxfev: stop after this many evaluations (over restarts).
        ftarget: stop once the best value reaches it.
        tolx: stop (or restart) when the population's spread falls below it.
        tolfun: stop (or restart) when recent values vary by less than it.
        timeout: wall-clock limit in seconds (over restarts).
        vectorized: fun takes the whole population.
        executor: a ``concurrent.futures.Executor``-like object (``map``) or a Dask
            ``distributed.Client``; members (chunks when vectorized) are mapped over it.
        chunksize: rows per task for a vectorized fun on an executor.
        on_error: ``'raise'`` (default) ends the run when fun raises; ``'nan'`` makes
            that member (chunk, when vectorized) NaN, handled by ``nan_policy``.
        callback: ``callback(intermediate_result)`` after every generation (with x,
            fun, nit, nfev, population, population_fun, run, restart, alpha); return
            True (or raise StopIteration) to stop that run.
        progress: show a tqdm progress bar with the best value and the spread.
        restarts: how many times to start again (new seed) when a run ends without
            reaching ftarget or a budget; the best point over all of them is kept, and
            the modes of every attempt are reported. ``'auto'`` (default): up to 4
            restarts, each only while the attempt that just ended found a basin of the
            best value no earlier attempt had and at least two such basins are known
            (several global optima), each avoiding the optima known; then, with bounds
            and no x0 / sigma0, up to 2 attempts in a smaller box where the known optima
            crowd together (features the whole box's population cannot resolve); with
            maxfev, only when what is left holds a whole attempt and its polishing. A
            problem with one best basin runs once.
        restart_popsize_factor: multiply popsize by this at each restart (2 doubles it).
        runs: R independent runs, advanced together (one batched x0 estimate for all
            R populations per generation); run r equals a separate call with
            ``seed=numpy.random.SeedSequence(seed).spawn(R)[r]``.
        method: the strategy, see :mod:`diffevo.strategies`: ``'diffevo'`` (default,
            :class:`diffevo.DiffusionEvolution`), ``'hades'`` or ``'charles'`` (need
            the ``hades`` extra).
        checkpoint: write the whole state to this file every ``checkpoint_every``
            generations (atomically), at the end, and when an exception ends the run.
        checkpoint_every: generations between checkpoints (default 1).
        resume: continue from this checkpoint (same fun and arguments as the run
            that wrote it); the result is bit-identical to an uninterrupted run.
        seed: int, SeedSequence, Generator or None; with runs > 1 also a list of R seeds.
        **options: the fields of :class:`diffevo._settings.Settings` that have no
            argument here: schedule, noise, fitness_shaping, latent_dim,
            denoise_final, density, bandwidth, nan_policy, backend, path, mode,
            approx, tol, client, polish (default True: every mode of the final
            population is refined by a local method within the bounds, counted in
            nfev and capped by maxfev; without maxfev it may spend a quarter of the
            attempts' evaluations), dtype, entropy_resolution.

    Returns:
        An :class:`~diffevo.OptimizeResult` (x, fun, success, status, message, stop,
        nit, nfev, nrestarts, population, population_fun, x0_estimate, history, seed,
        modes: the distinct optima found, each ``{x, fun, size}``, best first; x and
        fun are the best polished mode's),
        or a list of R of them when ``runs > 1``. Ctrl-C returns the results so far
        with ``success=False`` and ``stop`` naming ``'interrupted'``; any other
        exception propagates with the partial result as its ``result`` attribute.

    Raises:
        TypeError / ValueError naming the offending argument (unknown keyword
        arguments are a TypeError).
    """
    raise NotImplementedError  # pragma: no cover - the template of minimize/maximize


_SIGNATURE = inspect.signature(_signature)


def _entry(template: Callable[P, R], name: str, verb: str, sense: bool) -> Callable[P, R]:
    """``template``'s signature and docstring on a function that runs the optimisation."""

    @functools.wraps(template)
    def solve(*args: Any, **kwargs: Any) -> Any:
        bound = _SIGNATURE.bind(*args, **kwargs)  # a TypeError names a wrong argument
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        options = arguments.pop("options")
        return optimize(maximize=sense, caller=name, **arguments, **options)

    solve.__name__ = solve.__qualname__ = name
    solve.__doc__ = template.__doc__.replace("{verb}", verb)
    solve.__signature__ = with_options(template, exclude=NOT_OPTIONS)  # help() lists every option
    del solve.__wrapped__  # inspect follows __signature__, not the template
    return solve


minimize = _entry(_signature, "minimize", "Minimise", False)
maximize = _entry(_signature, "maximize", "Maximise", True)
