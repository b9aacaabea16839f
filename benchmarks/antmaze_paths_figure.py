"""The paper's Figure 2 from replayed antmaze episodes: where the ant goes, and where the intents point.

The paper's Figure 2 shows one episode of BC on antmaze-large-play-v2 without intents (the ant stays
near the start) and one with the Manager's intents (it reaches the goal, the intents' decodings drawn
in green ahead of it). This draws the same from the files `antmaze_progress.py --paths DIR` writes:
one panel per file, the evaluation map's walls, every episode's path as a faint line, one episode
highlighted (default: episode 0, the first of the run's own final evaluation, so not a chosen one)
with its start and goal and, for a run whose Manager has a decoder, the positions its intents decode
to (decode(encode(s) + g), x and y) at every k-th step, in green.

    R=runs/antmaze-large-play-v2/bc
    python benchmarks/antmaze_progress.py $R/none/seed0 $R/manager/seed0 --episodes 100 --paths paths
    python benchmarks/antmaze_paths_figure.py paths/bc_none_seed0.npz paths/bc_manager_seed0.npz --out figure2.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import atomic_path  # noqa: E402
from tasks.antmaze import ANTMAZE_TASKS  # noqa: E402
from tasks.antmaze.layouts import maze_maps  # noqa: E402

DEFAULT_K = 8  # the paper's Manager timescale, for files written without one


def load_paths(path: str | Path) -> dict:
    """An `antmaze_progress.save_paths` file as a dict of arrays (env, algo, intent as str; seed, k as int)."""
    with np.load(path, allow_pickle=False) as data:
        run = {key: data[key] for key in data.files}
    for key in ("env", "algo", "intent"):
        run[key] = str(run[key])
    run["seed"], run["k"] = int(run["seed"]), int(run["k"])
    return run


def episode_steps(run: dict, episode: int) -> np.ndarray:
    """Row indices of one episode's recorded steps, in order."""
    steps = np.flatnonzero(run["episode"] == episode)
    if not len(steps):
        raise ValueError(f"episode {episode} was not recorded for {run['algo']} {run['intent']} seed {run['seed']} "
                         f"(it has {len(run['goals'])} episodes); pick --episode below that")
    return steps


def draw_walls(ax, env: str) -> None:
    maze = maze_maps(ANTMAZE_TASKS[env][0].maze)[1]  # the evaluation env's map
    half = maze.scaling / 2
    for cell in maze.wall_cells():
        x, y = maze.cell_center(cell)
        ax.add_patch(Rectangle((x - half, y - half), maze.scaling, maze.scaling, color="0.8", lw=0))
    corners = np.array([maze.cell_center((0, 0)), maze.cell_center((maze.shape[0] - 1, maze.shape[1] - 1))])
    ax.set_xlim(corners[:, 0].min() - half, corners[:, 0].max() + half)
    ax.set_ylim(corners[:, 1].min() - half, corners[:, 1].max() + half)
    ax.set_aspect("equal")


def draw_run(ax, run: dict, episode: int) -> None:
    """One panel: walls, every episode faint, `episode` highlighted with its start, goal and subgoals."""
    draw_walls(ax, run["env"])
    for other in np.unique(run["episode"]):
        xy = run["positions"][run["episode"] == other]  # (steps, 2)
        ax.plot(xy[:, 0], xy[:, 1], color="tab:blue", alpha=0.12, lw=0.6)
    steps = episode_steps(run, episode)
    xy = run["positions"][steps]
    ax.plot(xy[:, 0], xy[:, 1], color="black", lw=1.4, label=f"episode {episode}")
    if len(run["subgoals"]):
        every = run["k"] or DEFAULT_K
        subgoals = run["subgoals"][steps][::every]  # (steps / k, 2)
        ax.scatter(subgoals[:, 0], subgoals[:, 1], color="tab:green", s=9, zorder=3,
                   label=f"decoded intent, every {every} steps")
    ax.scatter(*xy[0], color="tab:blue", s=40, zorder=4, label="start")
    ax.scatter(*run["goals"][episode], color="gold", edgecolor="black", marker="*", s=160, zorder=4, label="goal")
    outcome = "reached the goal" if run["success"][episode] else "did not reach the goal"
    ax.set_title(f"{run['algo']}, intents: {run['intent']}, seed {run['seed']}\n"
                 f"success {run['success'].mean():.2f} over {len(run['goals'])} episodes; episode {episode} {outcome}",
                 fontsize=9)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="lower right", fontsize=7)


def draw_figure(runs: list[dict], episode: int, out: str | Path) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 5.0), squeeze=False)
    for ax, run in zip(axes[0], runs):
        draw_run(ax, run, episode)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or "png", dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="npz files written by antmaze_progress.py --paths, one panel each")
    parser.add_argument("--episode", type=int, default=0, help="the episode to highlight in every panel")
    parser.add_argument("--out", default="antmaze_paths.png", help="the figure file (png, pdf, svg)")
    args = parser.parse_args(argv)
    runs = [load_paths(path) for path in args.paths]
    draw_figure(runs, args.episode, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
