"""The one config schema of every worker, CORL's per-domain presets, and compute profiles.

Every worker's config dataclass derives from `WorkerConfig` (env, seed, steps, eval_every,
eval_episodes, device, intent, manager, ...) and adds its algorithm's fields under CORL's names.
Values are resolved in this order (later wins):
  1. the dataclass defaults (CORL's defaults for the algorithm);
  2. the preset `corl/presets/<algo>/<domain>.yaml` (CORL's per-domain overrides; `datasets:`
     holds per-dataset overrides inside the domain file);
  3. the profile's compute knobs for the algorithm (`PROFILE_ALGO_FIELDS`: DT's batch on a CPU);
  4. `--config_path FILE`: the fields a YAML file names (its env, profile and device pick the
     preset and the knobs unless the command line names them), then command-line flags (pyrallis);
  5. the profile's run size (steps, eval cadence and episodes) for run-size fields left unset.
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import argparse
import dataclasses
import difflib
import re
import sys
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar

import yaml
from pyrallis.argparsing import ArgumentParser as PyrallisParser
from pyrallis.parsers.decoding import decode as pyrallis_decode
from pyrallis.utils import ParsingError

from common.cli import (OPEN_UNIT_RANGE, POSITIVE, PROBABILITY_BELOW_ONE, UNIT_RANGE, VALUE_KINDS, base_type,
                        boolean, check_minimums, check_ranges, compile_kwargs, integer)
from common.cli import config_field as field
from common.device import DEVICE_HELP, resolve_device, resolve_profile
from common.errors import INPUT_ERRORS, report_input_error
from tasks import get_task
from wrappers import INTENT_CHOICES

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"

# Run sizes per profile. paper = the paper's protocol (Table 2: workers 200K steps on top of a
# 300K-step Manager, baselines 500K; 100 evaluation episodes at the end).
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {"steps_with_intents": 200_000, "steps_baseline": 500_000, "eval_every": 50_000,
              "eval_episodes": 100, "final_eval_episodes": 100},
    "quick": {"steps_with_intents": 5_000, "steps_baseline": 5_000, "eval_every": 2_500,
              "eval_episodes": 10, "final_eval_episodes": 20},
    "smoke": {"steps_with_intents": 200, "steps_baseline": 200, "eval_every": 100,
              "eval_episodes": 2, "final_eval_episodes": 2},
}

# Compute knobs a CPU can afford, per profile and algorithm, set like a preset (the command line
# still wins); `paper` changes nothing (the Manager's profiles do the same, manager/config.py).
# Only DT needs one: CORL's maze2d and halfcheetah presets train it on 4096 sequences of 60 tokens,
# about a minute per update on one CPU core, so 5K quick steps would take days; CORL's generic DT
# default, batch 64, is ~0.5 s (docs/workers.md). warmup_steps keeps CORL's warmup share of the
# run (10K of its 100K update_steps = 10%) at the profile's 5K (quick) and 200 (smoke) steps.
PROFILE_ALGO_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "quick": {"dt": {"batch_size": 64, "warmup_steps": 500}},
    "smoke": {"dt": {"batch_size": 16, "warmup_steps": 20}},
}

C = TypeVar("C", bound="WorkerConfig")


@dataclass
class WorkerConfig:
    """Fields shared by every worker (one schema for all algorithms)."""

    algo: str = field("", "algorithm name (set by each worker file)")
    env: str = field("maze2d-umaze-v1", "D4RL task name")
    seed: int = field(0, "seed of initialisation, sampling and evaluation")
    profile: str = field("auto", "paper | quick | smoke | auto (paper on a GPU, quick on a CPU); quick and smoke also "
                                 "shrink DT's batch (PROFILE_ALGO_FIELDS in corl/shared/config.py)")
    steps: Optional[int] = field(None, "training steps (default: the profile's; paper: 200K with intents, 500K without)")
    eval_every: Optional[int] = field(None, "evaluate every this many steps (default: the profile's)")
    eval_episodes: Optional[int] = field(None, "episodes per evaluation during training (default: the profile's)")
    final_eval_episodes: Optional[int] = field(None, "episodes of the final evaluation (default: the profile's; paper 100)")
    eval_num_envs: int = field(50, "episodes evaluated at once (batched)")
    batch_size: int = field(256, "training batch size (each worker file sets CORL's default for its algorithm)")
    device: str = field("auto", DEVICE_HELP)
    intent: str = field("none", "none | manager | random: what is appended to observations")
    manager: Optional[str] = field(None, "manager.pt for intent=manager (default runs/<env>/manager/seed<k>/manager.pt)")
    intent_dim: int = field(10, "size of random intents (intent=random; the Manager's latent size)")
    compile: bool = field(False, "torch.compile the update's loss computations (backward included): faster "
                                 "updates on a GPU after a one-off compile; the same numbers up to float rounding "
                                 "(corl/shared/compiled.py)")
    compile_mode: str = field("default", "with --compile true, torch.compile's mode: default | reduce-overhead (CUDA "
                                         "graphs: the most for these small networks on a GPU) | max-autotune | "
                                         "max-autotune-no-cudagraphs")
    compile_manager: bool = field(False, "intent=manager: torch.compile the Manager's planner, which plans at every "
                                         "evaluation step (one-off compile; docs/manager.md)")
    runs_dir: str = field("runs", "root of the run folders")
    data_dir: Optional[str] = field(None, "folder searched first for the dataset")
    log_every: int = field(500, "write a metrics.csv row every this many steps")
    checkpoint_every: int = field(5_000, "save checkpoint.pt every this many steps (a multiple of log_every)")
    chunk_steps: int = field(0, "stop after this many steps in this call (0: run to the end); re-run to resume")
    overwrite: bool = field(False, "redo a finished run")
    progress: bool = field(True, "show a progress bar")
    wandb: bool = field(False, "also log to Weights & Biases (offline mode unless WANDB_MODE says otherwise)")


def domain_of(env: str) -> str:
    get_task(env)  # unknown names fail here, listing the known ones
    return env.split("-")[0]


def preset_path(algo: str, env: str) -> Path:
    return PRESETS_DIR / algo / f"{domain_of(env)}.yaml"


def load_preset(algo: str, env: str) -> dict[str, Any]:
    """CORL's overrides for `algo` on `env`'s domain (and dataset), as a flat dict."""
    path = preset_path(algo, env)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    per_dataset = data.pop("datasets", {}) or {}
    return {**data, **(per_dataset.get(env) or {})}


def check_profile(profile: str) -> None:
    if profile not in ("auto", *PROFILES):
        raise ValueError(f"unknown profile {profile!r}; choose one of auto, {', '.join(PROFILES)}")


def profile_algo_fields(algo: str, profile: str, device: str = "auto") -> dict[str, Any]:
    """The compute knobs `profile` (resolved on `device` when 'auto') sets for `algo`."""
    check_profile(profile)
    return dict(PROFILE_ALGO_FIELDS[resolve_profile(profile, resolve_device(device))].get(algo, {}))


# pyrallis reads a command-line int with int() ("1e5" fails) and a bool with bool() (any word but
# "false" is True: --normalize flase would train normalised); these read them as python -m manager does
pyrallis_decode.register(int, integer)
pyrallis_decode.register(bool, boolean)
_PYRALLIS_FIELD = re.compile(r"value='(?P<value>.*)' into field \".*\.(?P<name>\w+)\" of type")


def readable_parsing_error(exc: ParsingError, cls: type) -> ValueError:
    """pyrallis' two-line ParsingError as one line naming the option, the value and what it takes."""
    match = _PYRALLIS_FIELD.search(str(exc))
    hints = typing.get_type_hints(cls)
    if not match or match["name"] not in hints:
        return ValueError(str(exc).splitlines()[0])
    hint = hints[match["name"]]
    if typing.get_origin(hint) in (tuple, list):  # DT's betas, target_returns
        sizes = typing.get_args(hint)
        example = ("[" + ", ".join(["0.5"] * len(sizes)) + "]") if sizes and Ellipsis not in sizes else "[0.5, 0.25]"
        expected = f"a list of numbers in brackets, e.g. {example}"
    else:
        tp = base_type(hint)[0]
        expected = VALUE_KINDS[tp][1] if tp in VALUE_KINDS else f"a {getattr(tp, '__name__', tp)}"
    return ValueError(f"--{match['name']} {match['value']}: expected {expected} (on the command line or in "
                      "the --config_path file)")


def read_config_file(cls: type, path: str) -> dict[str, Any]:
    """The fields a `--config_path` file sets. What pyrallis would fail on with a traceback (missing,
    not YAML, not a mapping, a field the config lacks) is one ValueError naming the file and the fix."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"--config_path {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ValueError(f"--config_path {path} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"--config_path {path} must hold field: value lines (a YAML mapping), got a "
                         f"{type(values).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"--config_path {path} sets {key!r}, which is not a field of this worker{hint}; "
                             "the fields are the options of --help")
    return values


def without_option(argv: Sequence[str], name: str) -> list[str]:
    """`argv` less `--name VALUE` / `--name=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def parse_worker_config(cls: type[C], algo: str, argv: Sequence[str] | None = None) -> C:
    """Defaults <- preset(algo, env) <- the profile's compute knobs for algo <- `--config_path FILE`
    (the fields it names) <- command line (pyrallis)."""
    defaults = cls()
    pre = argparse.ArgumentParser(add_help=False)
    for name in ("env", "profile", "device", "config_path"):
        pre.add_argument(f"--{name}", default=None)
    known, _ = pre.parse_known_args(argv)
    own = read_config_file(cls, known.config_path) if known.config_path else {}
    if own.get("algo", algo) != algo:
        raise ValueError(f"--config_path {known.config_path} sets algo {own['algo']}, this command runs {algo}: "
                         f"run it with --algo {own['algo']}, or drop algo from the file")
    # the env, profile and device that pick the preset and the knobs: the command line's, else the file's
    env, profile, device = (getattr(known, name) or own.get(name) or getattr(defaults, name)
                            for name in ("env", "profile", "device"))
    # the file is layered over the preset, not put in its place (pyrallis alone would replace it)
    preset = {**load_preset(algo, env), **profile_algo_fields(algo, profile, device), **own, "algo": algo}
    if known.config_path:
        argv = without_option(argv if argv is not None else sys.argv[1:], "--config_path")
    unknown = set(preset) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"preset {preset_path(algo, env)} sets unknown fields {sorted(unknown)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preset.yaml"
        path.write_text(yaml.safe_dump(preset))
        # --help names the command a user types and opens with the worker file's docstring
        parser = PyrallisParser(config_class=cls, config_path=str(path), prog=f"python -m corl {algo}",
                                description=getattr(sys.modules.get(cls.__module__), "__doc__", None))
        try:
            return parser.parse_args(list(argv) if argv is not None else None)
        except ParsingError as exc:
            raise readable_parsing_error(exc, cls) from None


def resolve_run_size(cfg: C, profile: str) -> C:
    """Fill the unset run-size fields from the profile."""
    sizes = PROFILES[profile]
    steps = sizes["steps_baseline"] if cfg.intent == "none" else sizes["steps_with_intents"]
    changes = {"profile": profile, "steps": cfg.steps if cfg.steps is not None else steps}
    for key in ("eval_every", "eval_episodes", "final_eval_episodes"):
        changes[key] = getattr(cfg, key) if getattr(cfg, key) is not None else sizes[key]
    return dataclasses.replace(cfg, **changes)


# the least value of each count of the shared schema and of every worker's batch_size (chunk_steps 0:
# run to the end)
WORKER_MINIMUMS = {"steps": 1, "eval_every": 1, "eval_episodes": 1, "final_eval_episodes": 1, "eval_num_envs": 1,
                   "intent_dim": 1, "log_every": 1, "checkpoint_every": 1, "chunk_steps": 0, "batch_size": 1}

# the algorithms' own counts, by their CORL names, wherever a worker has them
ALGO_MINIMUMS = {**{name: 1 for name in ("max_traj_len", "hidden_dim", "policy_freq", "target_update_period",
                                         "cql_n_actions", "q_n_hidden_layers", "embedding_dim", "num_layers",
                                         "num_heads", "seq_len", "actor_hidden_dim", "actor_num_blocks", "time_dim",
                                         "diffusion_steps", "num_samples")},
                 "warmup_steps": 0, "bc_steps": 0}

# the ranges the algorithms' coefficients need, by their CORL names, wherever a worker has them
ALGO_RANGES = {**{name: UNIT_RANGE for name in ("discount", "gamma", "tau", "soft_target_update_rate", "actor_tau",
                                                "frac")},
               "iql_tau": OPEN_UNIT_RANGE,
               **{name: POSITIVE for name in ("actor_lr", "learning_rate", "vf_lr", "qf_lr", "policy_lr")},
               **{name: PROBABILITY_BELOW_ONE for name in ("attention_dropout", "residual_dropout",
                                                           "embedding_dropout", "actor_dropout")}}


def check_algo_ranges(cfg: WorkerConfig) -> None:
    """The counts of ALGO_MINIMUMS and the coefficients of ALGO_RANGES the worker has, each in its
    range, else a ValueError naming the option, the range and its default (the dataclass's: CORL's)."""
    present = {f.name for f in dataclasses.fields(cfg)}
    check_minimums(cfg, {name: least for name, least in ALGO_MINIMUMS.items() if name in present},
                   flag=lambda name: f"--{name}")
    check_ranges(cfg, ALGO_RANGES, flag=lambda name: f"--{name}")


def validate_worker_config(cfg: WorkerConfig) -> None:
    check_minimums(cfg, WORKER_MINIMUMS, flag=lambda name: f"--{name}")  # pyrallis: --log_every
    check_algo_ranges(cfg)
    if cfg.intent not in INTENT_CHOICES:
        raise ValueError(f"unknown intent {cfg.intent!r}; choose one of {' | '.join(INTENT_CHOICES)}")
    if cfg.manager and cfg.intent != "manager":  # (it would be ignored: a baseline run under another name)
        raise ValueError(f"--manager {cfg.manager} is read only with --intent manager, this run has --intent "
                         f"{cfg.intent}: add --intent manager (make worker INTENT=manager), or leave out --manager")
    check_profile(cfg.profile)
    compile_kwargs(cfg.compile, cfg.compile_mode, flag="--compile_mode")
    if cfg.checkpoint_every % cfg.log_every:
        raise ValueError("checkpoint_every must be a multiple of log_every (so a resumed run logs identically)")


def worker_main(cls: type[C], default_algo: str, train: Callable[[C], dict[str, Any] | None],
                argv: Sequence[str] | None = None) -> int:
    """The `main()` of every worker file: parse (`--algo` picks the preset, default `default_algo`),
    train, print final.json's fields as key=value lines. Bad input (a finished run, a mismatched
    checkpoint, an unknown task, a missing dataset, a bad setting, a diverged loss) prints one
    `error: ...` line and returns 2, whether the file runs as `python -m corl ALGO` or `python -m corl.ALGO`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    algo = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--algo"), default_algo)
    try:
        result = train(parse_worker_config(cls, algo, argv))
    except INPUT_ERRORS as exc:  # the user's input, named with its fix: one line, no traceback
        return report_input_error(exc)
    for key, value in (result or {}).items():
        print(f"{key}={value}")
    return 0
