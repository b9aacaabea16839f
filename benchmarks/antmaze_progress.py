"""How far towards the goal do antmaze workers get? Maze progress behind a success rate of 0.

antmaze's score is a success rate, so where every arm of a comparison scores 0 (the medium and
large mazes after a short run) it cannot say whether intents moved the ant at all. This replays a
finished worker run's final evaluation (its checkpoint.pt; the same episode seeds, number of
vector envs and intent source, reseeded as `WorkerRun.evaluate` does, so the first
final_eval_episodes episodes are the run's own: their score is checked against final.json and
printed; `--episodes` may add more, in further rounds of the same envs) and records the ant's x, y
before every action until the episode's first reward. Per episode, on the evaluation env's test
map (D4RL's BFS over its cells towards the one G cell, `intent_direction.AntMazeGoal`):

- start / closest / last: the BFS distance in cells from the ant's cell to the goal cell at the
  first step, the smallest over the episode, and at the last recorded step;
- progress: start - closest (cells gained towards the goal at the best moment);
- closest_m: the smallest Euclidean distance in metres to the episode's goal (drawn per reset);
- goal_cell_rate: the fraction of episodes that entered the goal cell (success needs 0.5 m).

    python benchmarks/antmaze_progress.py runs/antmaze-medium-play-v2/bc/{none,manager,random}/seed0

Prints one JSON line per run (means over episodes), a table per worker and arm (mean +- std over
seeds) and the progress gain of each intent arm pooled over workers (paired by worker and seed);
`--out F` also writes every run's result with its per-episode lists to one JSON file, and `--table F`
prints the tables of such a file again. Needs the run's Manager (intent=manager) where
the run found it. `--paths DIR` also keeps every episode's positions (and, for a Manager with a
decoder, where each step's intent decodes to and where the decoder puts the state itself) in
DIR/<algo>_<intent>_seed<k>.npz, the input of `antmaze_paths_figure.py` (the paper's Figure 2).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common.atomic import atomic_path, write_text_atomic  # noqa: E402
from corl.shared.evaluate import load_worker, rebuild_evaluation  # noqa: E402
from corl.shared.run import evaluation_returns  # noqa: E402
from intent_direction import AntMazeGoal  # noqa: E402
from runs.aggregate import welch_test  # noqa: E402
from tasks import get_normalized_score, get_task  # noqa: E402

NEAR_GOAL_CELLS = 2  # the table counts episodes whose closest approach is within this many BFS cells


class PositionRecorder:
    """A batch policy around another: records each row's x, y (obs[:, :2]) before every action
    until the row's first reward (antmaze: reward 1 = success = the episode ends). With `decode`
    ((N, D) observations -> (N, 2, 2) positions: where each row's intent points, and where the
    decoder puts the row's own state), records those too."""

    def __init__(self, policy, episodes: int, decode=None):
        self.policy = policy
        self.episodes = episodes
        self.decode = decode
        self.paths: list[list[np.ndarray]] = [[] for _ in range(episodes)]  # per episode: (2,) positions
        self.decoded: list[list[np.ndarray]] = [[] for _ in range(episodes)]  # the same steps' (2, 2) decodings
        self.goals = np.zeros((episodes, 2))
        self.success = np.zeros(episodes, bool)
        self.ids = np.zeros(0, int)
        self.alive = np.zeros(0, bool)

    def reset(self, episode_ids: np.ndarray) -> None:
        self.ids = np.asarray(episode_ids)
        self.alive = self.ids < self.episodes  # the last round may run extra episodes: not recorded
        self.policy.reset(episode_ids)

    def reset_info(self, info: dict) -> None:
        goals = np.asarray(info["goal"], dtype=np.float64).reshape(len(self.ids), 2)
        valid = self.ids < self.episodes
        self.goals[self.ids[valid]] = goals[valid]

    def observe(self, rewards: np.ndarray) -> None:
        self.policy.observe(rewards)
        reached = self.alive & (np.asarray(rewards) > 0)
        self.success[self.ids[reached]] = True
        self.alive &= ~reached

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(self.alive)
        decoded = np.asarray(self.decode(obs[rows]), dtype=np.float64) if self.decode and len(rows) else None
        for i, row in enumerate(rows):
            self.paths[self.ids[row]].append(np.asarray(obs[row, :2], dtype=np.float64))
            if decoded is not None:
                self.decoded[self.ids[row]].append(decoded[i])
        return self.policy(obs)


def decoded_positions(manager, obs_dim: int):
    """(N, obs_dim + d) observations with the Manager's intents appended -> (N, 2, 2): the x, y of
    decode(encode(s) + g), where the intent points (about k steps on; paper Figure 2), and of
    decode(encode(s)), where the decoder puts the state itself (its own error, the control)."""
    def decode(obs: np.ndarray) -> np.ndarray:
        intent = torch.as_tensor(obs[:, obs_dim:], dtype=torch.float32, device=manager.device)  # (N, d)
        with torch.no_grad():
            z = manager.encode(obs[:, :obs_dim])  # (N, d)
            return torch.stack([manager.decode(z + intent)[:, :2], manager.decode(z)[:, :2]], dim=1).cpu().numpy()
    return decode


def save_paths(path: str | Path, result: dict, recorder: PositionRecorder, k: int = 0) -> None:
    """One run's episodes as flat arrays (npz, no pickles): positions (steps, 2) and the episode
    each step belongs to; for the same steps the subgoals and the decoder's reconstructions (each
    (steps, 2), or (0, 2) without a decoder); goals, success, the run, and the Manager's k (0 without one)."""
    episode = np.concatenate([np.full(len(p), i) for i, p in enumerate(recorder.paths)])  # (steps,)
    positions = np.concatenate([np.reshape(p, (-1, 2)) for p in recorder.paths])  # (steps, 2)
    decoded = np.concatenate([np.reshape(d, (-1, 2, 2)) for d in recorder.decoded])  # (steps or 0, 2, 2)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, positions=positions.astype(np.float32), episode=episode.astype(np.int32),
                            subgoals=decoded[:, 0].astype(np.float32), reconstructions=decoded[:, 1].astype(np.float32),
                            goals=recorder.goals.astype(np.float32),
                            success=recorder.success, env=np.array(result["env"]), algo=np.array(result["algo"]),
                            intent=np.array(result["intent"]), seed=np.array(result["seed"]), k=np.array(k))


def replay_final_evaluation(run_dir: Path, episodes: int | None, device: torch.device,
                            paths_dir: Path | None = None) -> dict:
    cfg, module, state = load_worker(run_dir, device)
    final = json.loads((run_dir / "final.json").read_text())
    task = get_task(cfg.env)
    if task.domain != "antmaze":
        raise ValueError(f"{run_dir} is a {cfg.env} run; this measures antmaze runs only")
    run = rebuild_evaluation(run_dir, cfg, module, state, device)  # as the run evaluated (corl evaluate)
    source = run.intents
    episodes = episodes or cfg.final_eval_episodes
    manager = getattr(source, "manager", None)
    decode = decoded_positions(manager, task.obs_dim) if paths_dir and getattr(manager, "decoder", None) else None
    policy = PositionRecorder(run.policy, episodes, decode)
    returns = evaluation_returns(cfg.env, source, policy, run.envs, episodes, cfg.seed)  # as WorkerRun.evaluate
    run.envs.close()

    scores = get_normalized_score(cfg.env, returns)  # (episodes,)
    checked = final["eval_episodes"] if episodes >= final["eval_episodes"] else None
    result = {"run": str(run_dir), "env": cfg.env, "algo": cfg.algo, "intent": cfg.intent, "seed": cfg.seed,
              "episodes": episodes, "normalized_score": float(scores.mean()),
              "final_json_score": final["normalized_score"],
              "checked_episodes": checked,  # the first episodes, the run's own final evaluation
              "replayed_final_score": float(scores[:checked].mean()) if checked else None,
              **episode_progress(policy.paths, policy.goals, policy.success, AntMazeGoal(cfg.env))}
    if paths_dir:
        save_paths(Path(paths_dir) / f"{cfg.algo}_{cfg.intent}_seed{cfg.seed}.npz", result, policy,
                   int(getattr(source, "k", None) or 0))
    return result


def episode_progress(paths: list[list[np.ndarray]], goals: np.ndarray, success: np.ndarray, maze: AntMazeGoal) -> dict:
    """Means over episodes (and the per-episode lists) of the BFS distances in cells at the start,
    closest and last recorded positions, of progress = start - closest, of the closest distance in
    metres to the episode's goal (at most 0.5 for a success: the step that ended it came within
    0.5 m, after the last recorded position), the rate of episodes that entered the goal cell, and
    the success rate."""
    start, closest, last, closest_m = [], [], [], []
    for path, goal, reached in zip(paths, goals, success):
        xy = np.stack(path)  # (steps, 2)
        distance = -maze.values(xy)  # (steps,) BFS cells to the goal cell
        start.append(distance[0])
        closest.append(distance.min())
        last.append(distance[-1])
        metres = float(np.linalg.norm(xy - goal, axis=1).min())
        closest_m.append(min(metres, 0.5) if reached else metres)
    start, closest, last = (np.array(v) for v in (start, closest, last))
    return {"success_rate": float(np.mean(success)), "goal_cell_rate": float(np.mean(closest == 0)),
            "start_cells": float(start.mean()), "closest_cells": float(closest.mean()),
            "last_cells": float(last.mean()), "progress_cells": float((start - closest).mean()),
            "closest_m": float(np.mean(closest_m)),
            "per_episode": {"start": start.tolist(), "closest": closest.tolist(), "last": last.tolist(),
                            "closest_m": [round(v, 3) for v in closest_m], "success": np.asarray(success).tolist()}}


def progress_pairs(baseline: list[dict], runs: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(before, after, workers): each run's progress beside its baseline's, the baseline being the
    run of the same worker and seed (a seed's runs share their episodes); runs without one are left out."""
    base = {(r["algo"], r["seed"]): r["progress_cells"] for r in baseline}
    paired = [r for r in runs if (r["algo"], r["seed"]) in base]
    before = np.array([base[(r["algo"], r["seed"])] for r in paired])  # (pairs,)
    after = np.array([r["progress_cells"] for r in paired])  # (pairs,)
    return before, after, list(dict.fromkeys(r["algo"] for r in paired))


def paired_p(baseline: list[dict], runs: list[dict]) -> str:
    """Paired t-test of progress over the seeds run on both sides, or n/a."""
    before, after, _ = progress_pairs(baseline, runs)
    return f"{stats.ttest_rel(after, before).pvalue:.3g}" if len(before) >= 2 else "n/a"


def progress_table(results: list[dict]) -> str:
    """Markdown: per worker and intent arm, mean +- sample std over seeds of each run's means, the
    episodes that came within NEAR_GOAL_CELLS of the goal cell, and Welch's and the paired p of the
    seeds' progress against the worker's arm without intents."""
    columns = [("success_rate", "success"), ("goal_cell_rate", "entered goal cell"),
               ("start_cells", "start (cells)"), ("closest_cells", "closest (cells)"),
               ("progress_cells", "progress (cells)"), ("last_cells", "last (cells)"), ("closest_m", "closest (m)")]
    arms: dict[tuple[str, str], list[dict]] = {}
    intent_order = {"none": 0, "manager": 1, "random": 2}
    algo_order: dict[str, int] = {}  # workers in the order they first appear
    for result in results:
        algo_order.setdefault(result["algo"], len(algo_order))
    for result in sorted(results, key=lambda r: (algo_order[r["algo"]], intent_order.get(r["intent"], 3), r["seed"])):
        arms.setdefault((result["algo"], result["intent"]), []).append(result)
    header = " | ".join(name for _, name in columns)
    lines = [f"| worker | intents | seeds | {header} | episodes within {NEAR_GOAL_CELLS} cells | "
             "progress: Welch p vs none | progress: paired p vs none |",
             "| --- | --- | --- | " + " | ".join("---" for _ in columns) + " | --- | --- | --- |"]
    for (algo, intent), runs in arms.items():
        cells = []
        for key, _ in columns:
            values = np.array([r[key] for r in runs])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.2f} ± {spread:.2f}")
        near = sum(int((np.array(r["per_episode"]["closest"]) <= NEAR_GOAL_CELLS).sum()) for r in runs)
        cells.append(f"{near} / {sum(len(r['per_episode']['closest']) for r in runs)}")
        baseline = arms.get((algo, "none"))
        if intent != "none" and baseline:
            cells.append(welch_test([r["progress_cells"] for r in baseline],
                                    [r["progress_cells"] for r in runs]).p_text())
            cells.append(paired_p(baseline, runs))
        else:
            cells += ["", ""]
        seeds = ",".join(str(r["seed"]) for r in runs)
        lines.append(f"| {algo} | {intent} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled_gain_table(results: list[dict]) -> str:
    """Markdown: per intent arm, the progress gain over every (worker, seed) pair run with and without
    intents, all workers pooled: mean +- sample std, how many pairs gain, the paired t-test's p and the
    sign test's (binomial, ties dropped). A seed's workers share its Manager and episodes, so pairs of
    one seed are not independent: read the p as a summary beside the per-worker rows, not instead.
    Empty where no arm has two pairs."""
    baseline = [r for r in results if r["intent"] == "none"]
    lines = ["| intents | workers | pairs | progress gain (cells) | pairs that gain | paired t p | sign test p |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for intent in ("manager", "random"):
        before, after, workers = progress_pairs(baseline, [r for r in results if r["intent"] == intent])
        if len(before) < 2:
            continue
        gain = after - before
        gains, moved = int((gain > 0).sum()), int((gain != 0).sum())
        sign_p = stats.binomtest(gains, moved, 0.5).pvalue if moved else 1.0
        lines.append(f"| {intent} | {','.join(workers)} | {len(gain)} | {gain.mean():.2f} ± {gain.std(ddof=1):.2f} | "
                     f"{gains} / {len(gain)} | {stats.ttest_rel(after, before).pvalue:.3g} | {sign_p:.3g} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def tables(results: list[dict]) -> str:
    """The per-worker table and, where there are pairs to pool, the pooled gains below it."""
    return "\n\n".join(block for block in (progress_table(results), pooled_gain_table(results)) if block)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="finished antmaze worker run folders (checkpoint.pt, final.json)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes to replay (default: the run's final_eval_episodes; the first "
                             "final_eval_episodes of more are still checked against final.json)")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--out", default=None, help="also write all results to this JSON file")
    parser.add_argument("--paths", default=None,
                        help="also write each run's positions (and decoded intents and states) to DIR/<algo>_<intent>_seed<k>.npz "
                             "for antmaze_paths_figure.py")
    parser.add_argument("--table", default=None,
                        help="print the tables of a results JSON written by --out (replays nothing)")
    args = parser.parse_args(argv)
    if args.table:
        results = json.loads(Path(args.table).read_text())
        print(tables(results))
        return 0
    if not args.runs:
        parser.error("give run folders to replay, or --table RESULTS.json")
    torch.set_num_threads(1)
    results = []
    for run in args.runs:
        result = replay_final_evaluation(Path(run), args.episodes, torch.device(args.device), args.paths)
        replayed = result["replayed_final_score"]
        if replayed is not None and abs(replayed - result["final_json_score"]) > 1e-9:
            print(f"warning: {run}: its first {result['checked_episodes']} replayed episodes score {replayed}, "
                  f"final.json {result['final_json_score']}: not the run's evaluation", file=sys.stderr)
        print(json.dumps({k: v for k, v in result.items() if k != "per_episode"}), flush=True)
        results.append(result)
    if args.out:
        write_text_atomic(args.out, json.dumps(results, indent=1) + "\n")
    print(tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
