"""``diffevo rl``: evolve a neural-network policy for a gymnasium task (needs diffevo[rl]).

Example::

    diffevo rl --env CartPole-v1 --seed 0 --json cartpole.json

trains the paper's small controller (one hidden layer of 8) with the paper's latent
Diffusion Evolution (256 members, 10 generations), then plays the best policy on 10
fresh episodes and reports their mean (``eval_mean_reward``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from ._checks import int_at_least, output_path, positive_ints, real_in  # noqa: PLC0415

    p = subparsers.add_parser(
        "rl", help="evolve a policy for a gymnasium task (CartPole-v1, Acrobot-v1, ...)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, metavar="ENV_ID", help="gymnasium env id")
    p.add_argument("--method", default="reference", choices=("reference", "diffevo", "cma"),
                   help="reference: the paper's loop (default); diffevo: the library's "
                        "DiffusionEvolution; cma: CMA-ES (pycma)")
    p.add_argument("--popsize", type=int_at_least(2), default=256, help="population size (default 256)")
    p.add_argument("--generations", type=int_at_least(2), default=10, help="generations (default 10)")
    p.add_argument("--hidden", type=positive_ints("8 or 128,128"), default=(8,), metavar="W[,W...]",
                   help="hidden layer widths (default 8; the paper's large net: 128,128)")
    latent = p.add_mutually_exclusive_group()
    latent.add_argument("--latent-dim", type=int_at_least(1), default=2,
                        help="latent projection dimension (default 2)")
    latent.add_argument("--no-latent", action="store_true",
                        help="measure distances in all parameters")
    p.add_argument("--scaling", type=real_in(0.0, math.inf, open_low=True), default=1.0,
                   help="parameter scaling (default 1)")
    p.add_argument("--temperature", type=real_in(0.0, math.inf, open_low=True), default=1.0,
                   help="T of the fitness mapping exp((r - r_max) / T) (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--fresh-episodes", action="store_true",
                   help="train on fresh episode seeds every generation (default: seed 42, "
                        "the paper's protocol)")
    p.add_argument("--max-steps", type=int_at_least(1), default=500, help="episode cap (default 500)")
    p.add_argument("--eval-episodes", type=int_at_least(1), default=10,
                   help="fresh episodes to evaluate the best policy on (default 10)")
    p.add_argument("--json", type=output_path("rl.json"), default=None, metavar="PATH", help="write the result as JSON")
    p.add_argument("--plot", type=output_path("rl.png"), default=None, metavar="PNG",
                   help="draw the reward curve (needs diffevo[plot])")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from diffevo import rl  # noqa: PLC0415 - needs gymnasium
    except ImportError as exc:
        print(f"diffevo rl: error: {exc}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        res = rl.evolve(args.env, method=args.method, hidden=args.hidden,
                        latent_dim=None if args.no_latent else args.latent_dim,
                        popsize=args.popsize, generations=args.generations, scaling=args.scaling,
                        temperature=args.temperature, seed=args.seed,
                        episode_seed=None if args.fresh_episodes else 42,
                        max_steps=args.max_steps, eval_episodes=args.eval_episodes,
                        progress=progress)
    except (TypeError, ValueError, ImportError) as exc:
        print(f"diffevo rl: error: {exc}", file=sys.stderr)
        return 2
    latent = "no latent" if args.no_latent else f"latent dim {args.latent_dim}"
    print(f"diffevo rl: {args.env}, method {args.method}, {res.policy.num_params} parameters "
          f"(hidden {','.join(map(str, res.policy.hidden))}), {latent}, {args.popsize} members x "
          f"{args.generations} generations, seed {args.seed}")
    curve = ", ".join(f"{c['best']:.0f}" for c in res.curve)
    print(f"  best return per generation: {curve}")
    print(f"  last generation: mean {res.final_rewards.mean():.1f} (std {res.final_rewards.std():.1f})")
    print(f"  best policy on {len(res.eval_rewards)} fresh episodes: mean {res.eval_mean_reward:.1f} "
          f"(min {res.eval_rewards.min():.1f}, max {res.eval_rewards.max():.1f})")
    print(f"  {res.evaluations} training episodes in {res.train_time:.2f} s, "
          f"evaluation {res.eval_time:.2f} s")
    if args.plot:
        try:
            _plot(res, args.plot)
            print(f"  wrote {args.plot}")
        except ImportError as exc:
            print(f"  no picture: {exc}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_dict(), indent=1) + "\n")
        print(f"  wrote {args.json}")
    return 0


def _plot(res, path: str) -> None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("the plot needs matplotlib: pip install 'diffevo[plot]'") from exc
    gen = [c["generation"] for c in res.curve]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.fill_between(gen, [c["q10"] for c in res.curve], [c["q90"] for c in res.curve],
                    alpha=0.3, label="10%-90% of the population")
    ax.plot(gen, [c["median"] for c in res.curve], label="median")
    ax.plot(gen, [c["best"] for c in res.curve], "--", label="best")
    ax.axhline(res.eval_mean_reward, color="k", lw=0.8, label="best policy, fresh episodes")
    ax.set_xlabel("generation")
    ax.set_ylabel("episode return")
    ax.set_title(f"{res.env_id}: {res.method}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
