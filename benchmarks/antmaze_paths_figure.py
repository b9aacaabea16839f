"""The paper's Figure 2 from replayed antmaze episodes: where the ant goes, and where the intents point.

The paper's Figure 2 shows one episode of BC on antmaze-large-play-v2 without intents (the ant stays
near the start) and one with the Manager's intents (it reaches the goal, the intents' decodings drawn
in green ahead of it). This draws the same from the files `antmaze_progress.py --paths DIR` writes:
one panel per file, the evaluation map's walls, every episode's path as a faint line, one episode
highlighted (default: episode 0, the first of the run's own final evaluation, so not a chosen one)
with its start and goal and, for a run whose Manager has a decoder, the positions its intents decode
to (decode(encode(s) + g), x and y) at every k-th step, in green. Over all recorded steps it also
counts (printed as JSON and in each panel's title) how often the ant's position k steps later lies in
a cell nearer the goal on the maze's BFS than its own, as near, or farther, and for such runs the same
for the decoded intents (and how often they lie in a wall) and, as the control for the decoder's own
bias, for the decoded state itself, decode(encode(s)).

    R=runs/antmaze-large-play-v2/bc
    python benchmarks/antmaze_progress.py $R/none/seed0 $R/manager/seed0 --episodes 100 --paths paths
    python benchmarks/antmaze_paths_figure.py paths/bc_none_seed0.npz paths/bc_manager_seed0.npz --out figure2.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common.atomic import atomic_path  # noqa: E402
from intent_direction import AntMazeGoal  # noqa: E402

DEFAULT_K = 8  # the paper's Manager timescale, for files written without one


def load_paths(path: str | Path) -> dict:
    """An `antmaze_progress.save_paths` file as a dict of arrays (env, algo, intent as str; seed, k as int)."""
    with np.load(path, allow_pickle=False) as data:
        run = {key: data[key] for key in data.files}
    missing = sorted({"positions", "episode", "subgoals", "goals", "success", "env", "algo", "intent", "seed", "k"}
                     - set(run))
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: not a file of antmaze_progress.py --paths "
                         "(replay the run with --paths DIR to write one)")
    run.setdefault("reconstructions", np.zeros((0, 2), np.float32))  # files written before it was kept
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


def fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else float("nan")  # nan: no steps to count


def cell_directions(maze: AntMazeGoal, here: np.ndarray, there: np.ndarray) -> dict:
    """From positions `here` to positions `there` (each (steps, 2)), in the cells of the wall geometry
    (MazeMap.containing_cell: where a position physically is): the fraction of steps where `there`
    lies in a wall and, of the others, where its cell is nearer the goal cell on the BFS than
    `here`'s, as near, or farther."""
    before, after = (maze.distances([maze.map.containing_cell(p) for p in xy]) for xy in (here, there))  # (steps,)
    in_wall = after == maze.unreachable
    change = (after - before)[~in_wall & (before < maze.unreachable)]  # < 0: nearer the goal
    return {"steps": len(after), "in_wall": fraction(in_wall), "nearer": fraction(change < 0),
            "same": fraction(change == 0), "farther": fraction(change > 0)}


def directions(run: dict) -> dict:
    """Where the Manager's decoded intents point from each recorded step (`intents`, None without
    subgoals), and for comparison where the ant itself is k steps later in the same episode (`moves`)
    and where the decoder puts the state itself, decode(encode(s)) (`reconstructions`: how much of
    the intents' lead is the decoder's own bias; None without)."""
    maze = AntMazeGoal(run["env"])
    k = run["k"] or DEFAULT_K
    episode = run["episode"]
    starts = np.flatnonzero(episode[k:] == episode[:-k])  # steps t whose step t + k is in the same episode
    moves = cell_directions(maze, run["positions"][starts], run["positions"][starts + k])
    intents = cell_directions(maze, run["positions"], run["subgoals"]) if len(run["subgoals"]) else None
    decoder = cell_directions(maze, run["positions"], run["reconstructions"]) if len(run["reconstructions"]) else None
    return {"k": k, "moves": moves, "intents": intents, "reconstructions": decoder}


def draw_walls(ax, env: str) -> None:
    maze = AntMazeGoal(env).map  # the evaluation env's map
    half = maze.scaling / 2
    for cell in maze.wall_cells():
        x, y = maze.cell_center(cell)
        ax.add_patch(Rectangle((x - half, y - half), maze.scaling, maze.scaling, color="0.8", lw=0))
    corners = np.array([maze.cell_center((0, 0)), maze.cell_center((maze.shape[0] - 1, maze.shape[1] - 1))])
    ax.set_xlim(corners[:, 0].min() - half, corners[:, 0].max() + half)
    ax.set_ylim(corners[:, 1].min() - half, corners[:, 1].max() + half)
    ax.set_aspect("equal")


def draw_run(ax, run: dict, heading: dict, episode: int) -> None:
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
    title = (f"{run['algo']}, intents: {run['intent']}, seed {run['seed']}\n"
             f"success {run['success'].mean():.2f} over {len(run['goals'])} episodes; episode {episode} {outcome}")
    title += (f"\n{heading['k']}-step moves: {heading['moves']['nearer']:.0%} to a cell nearer the goal, "
              f"{heading['moves']['farther']:.0%} farther")
    if heading["intents"]:
        title += (f"\ndecoded intents: {heading['intents']['nearer']:.0%} nearer, {heading['intents']['farther']:.0%} "
                  f"farther, {heading['intents']['in_wall']:.0%} in walls")
    if heading["reconstructions"]:
        title += (f"\n(decoded states: {heading['reconstructions']['nearer']:.0%} nearer, "
                  f"{heading['reconstructions']['farther']:.0%} farther)")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="lower right", fontsize=7)


def draw_figure(runs: list[dict], headings: list[dict], episode: int, out: str | Path) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 5.0), squeeze=False)
    for ax, run, heading in zip(axes[0], runs, headings):
        draw_run(ax, run, heading, episode)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or "png", dpi=130)
    plt.close(fig)


def directions_table(runs: list[dict], headings: list[dict]) -> str:
    """Markdown: per env, worker and intent arm, mean +- sample std over seeds of each run's success
    rate and of the fractions of steps whose k-step move and whose decoded intent lead nearer / farther."""
    arms: dict[tuple[str, str, str], list[tuple[dict, dict]]] = {}
    for run, heading in zip(runs, headings):
        arms.setdefault((run["env"], run["algo"], run["intent"]), []).append((run, heading))
    columns = [("moves", "nearer"), ("moves", "farther"), ("intents", "nearer"), ("intents", "farther"),
               ("intents", "in_wall"), ("reconstructions", "nearer"), ("reconstructions", "farther")]
    lines = ["| env | worker | intents | seeds | success | k-step moves nearer | k-step moves farther | "
             "decoded intents nearer | decoded intents farther | decoded intents in walls | "
             "decoded states nearer | decoded states farther |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def mean_std(values: list[float]) -> str:
        if not values:
            return ""
        spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
        return f"{np.mean(values):.3f} ± {spread:.3f}"

    intent_order = {"none": 0, "manager": 1, "random": 2}
    for (env, algo, intent), members in sorted(arms.items(), key=lambda a: (a[0][:2], intent_order.get(a[0][2], 3))):
        cells = [mean_std([float(run["success"].mean()) for run, _ in members])]
        cells += [mean_std([heading[part][key] for _, heading in members if heading[part]]) for part, key in columns]
        seeds = ",".join(str(run["seed"]) for run, _ in sorted(members, key=lambda m: m[0]["seed"]))
        lines.append(f"| {env} | {algo} | {intent} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="npz files written by antmaze_progress.py --paths, one panel each")
    parser.add_argument("--episode", type=int, default=0, help="the episode to highlight in every panel")
    parser.add_argument("--out", default="antmaze_paths.png", help="the figure file (png, pdf, svg)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the counts and their table (per arm over seeds), draw no figure")
    args = parser.parse_args(argv)
    missing = [path for path in args.paths if not Path(path).is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)} (write them with antmaze_progress.py RUN ... --paths DIR)")
    runs = [load_paths(path) for path in args.paths]
    headings = [directions(run) for run in runs]
    for path, run, heading in zip(args.paths, runs, headings):
        print(json.dumps({"paths": str(path), "success_rate": float(run["success"].mean()), **heading}))
    print(directions_table(runs, headings))
    if not args.table_only:
        draw_figure(runs, headings, args.episode, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
