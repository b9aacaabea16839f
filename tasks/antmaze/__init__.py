"""antmaze-*: D4RL's ant mazes (umaze, medium, large; ultra from the TAP fork) and their datasets.

Table of tasks as d4rl/locomotion/__init__.py (v2) and ZhengyaoJiang/d4rl (ultra, v0) register them.
"""
from __future__ import annotations

from dataclasses import dataclass



@dataclass(frozen=True)
class AntMazeDatasetRecipe:
    """How D4RL's generation script was run for a task's dataset."""

    maze: str            # umaze, medium, large, ultra
    multi_start: bool    # --multi_start (D4RL's non_zero_reset)
    multi_goal: bool     # --multigoal: diverse goals (any free cell) instead of the G cells


ANTMAZE_V2_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/ant_maze_v2"
ANTMAZE_ULTRA_URL = "https://github.com/ZhengyaoJiang/d4rl/releases/download/public"


def _d4rl_file(maze_tag: str, multi_start: bool, multi_goal: bool, suffix: str) -> str:
    return f"Ant_maze_{maze_tag}_noisy_multistart_{multi_start}_multigoal_{multi_goal}_sparse{suffix}.hdf5"


# name: (recipe, max_episode_steps, D4RL file name, its URL); REF_MIN 0, REF_MAX 1 for every task.
ANTMAZE_TASKS: dict[str, tuple[AntMazeDatasetRecipe, int, str, str]] = {}
for _name, _maze, _tag, _start, _goal, _limit in [
    ("antmaze-umaze-v2", "umaze", "u-maze", False, False, 700),
    ("antmaze-umaze-diverse-v2", "umaze", "u-maze", True, True, 700),
    ("antmaze-medium-play-v2", "medium", "big-maze", True, False, 1000),
    ("antmaze-medium-diverse-v2", "medium", "big-maze", True, True, 1000),
    ("antmaze-large-play-v2", "large", "hardest-maze", True, False, 1000),
    ("antmaze-large-diverse-v2", "large", "hardest-maze", True, True, 1000),
    ("antmaze-ultra-play-v0", "ultra", "ultra", True, False, 2000),
    ("antmaze-ultra-diverse-v0", "ultra", "ultra", True, True, 2000),
]:
    _ultra = _maze == "ultra"
    _file = _d4rl_file(_tag, _start, _goal, "" if _ultra else "_fixed")
    ANTMAZE_TASKS[_name] = (AntMazeDatasetRecipe(_maze, _start, _goal), _limit, _file,
                            f"{ANTMAZE_ULTRA_URL if _ultra else ANTMAZE_V2_URL}/{_file}")

EXPERT_MODES = {"expert": "sample", "expert-mean": "mean", "expert-noisy": "noisy"}


def make_antmaze_env(maze: str):
    """The evaluation env: the maze's test map, its G cell as goal (+ noise), a new goal at every
    reset (v2; see docs/tasks.md for ultra-v0), start at the reset cell."""
    from tasks.antmaze.env import AntMazeEnv
    from tasks.antmaze.layouts import maze_maps

    return AntMazeEnv(maze_maps(maze)[1])


def generate_antmaze_task(spec, steps: int, seed: int, show_progress: bool = True):
    from tasks.antmaze.generate import generate_antmaze

    return generate_antmaze(ANTMAZE_TASKS[spec.name][0], steps, seed, show_progress)


def make_expert_factory(mode: str):
    """A scripted-policy factory (spec, seed, d4rl_protocol) -> the waypoint + policy expert."""

    def make_expert_policy(spec, seed: int = 0, d4rl_protocol: bool = False):
        from tasks.antmaze.layouts import maze_maps
        from tasks.antmaze.policy import ExpertPolicy, GoalReachingPolicy

        maze = ANTMAZE_TASKS[spec.name][0].maze
        return ExpertPolicy(maze_maps(maze)[1], GoalReachingPolicy.load(), mode, seed)

    return make_expert_policy
