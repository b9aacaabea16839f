"""D4RL tasks offline: envs by D4RL name on gymnasium + mujoco, datasets in D4RL's layout,
D4RL's normalised scores. See docs/tasks.md.

    from tasks import make_env, load_dataset, qlearning_dataset, get_normalized_score
"""
from tasks.datasets import (DatasetError, DatasetNotFoundError, find_dataset, generate_dataset,
                            load_dataset, qlearning_dataset, read_dataset, trajectories)
from tasks.envs import make_env, make_vector_env
from tasks.evaluation import evaluate_policy, get_normalized_score, make_policy
from tasks.registry import TASKS, TaskSpec, UnknownTaskError, get_task, register

__version__ = "0.1.0"

__all__ = [
    "TASKS", "TaskSpec", "UnknownTaskError", "get_task", "register", "make_env", "make_vector_env",
    "load_dataset", "read_dataset", "find_dataset", "generate_dataset", "qlearning_dataset",
    "trajectories", "DatasetError", "DatasetNotFoundError", "get_normalized_score",
    "evaluate_policy", "make_policy",
]
