"""Several seeds of one mode and task trained in one process (`python -m manager train --seeds 0-4`).

One Trainer per seed (its own run folder, sampler, checkpoints, metrics, W&B run and evaluation)
around one StackedAgents update for all of them (manager/stacked.py: parameters stacked on a
leading seed axis, one vmapped update). Seeds resumed from different steps first catch up alone;
a seed whose loss diverges stops at its last good checkpoint and the others go on without it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

from common.interrupt import StopOnSignal
from common.metrics import TrainingDiverged
from common.progress import progress_bar
from common.run_dir import RunDir
from common.wandb_log import WandbMirror, closing
from manager.stacked import StackedAgents
from manager.trainer import ResolvedRun, Trainer, compile_options
from tasks import load_dataset


class SeedsDiverged(TrainingDiverged):
    """Seeds of a stacked run diverged; each stopped at its last good checkpoint and the others went
    on without them. `failures`: seed -> its TrainingDiverged; `results`: the others' final.json
    contents (None where the call stopped early)."""

    def __init__(self, failures: dict[int, TrainingDiverged], results: list[dict[str, Any] | None]):
        self.failures, self.results = failures, results
        named = "; ".join(f"seed {seed}: {exc}" for seed, exc in failures.items())
        others = (f"the other seeds of the run went on without {'it' if len(failures) == 1 else 'them'}" if results
                  else "no other seed was left to go on")
        super().__init__(f"{named} ({others})")


def catch_up(trainers: list[Trainer], failures: dict[int, TrainingDiverged]) -> bool:
    """Seeds resumed from different steps (a stacked run killed between two seeds' checkpoints, a
    seed trained alone before, a fresh seed joining) cannot share one update: each seed behind the
    furthest trains alone up to its step first (one that diverges meanwhile leaves `trainers` for
    `failures`). Then every seed stops at the same step in this call (the earliest of their chunk
    limits). False: a chunk or time limit ended the call first."""
    lead = max(trainer.agent.step for trainer in trainers)
    for trainer in list(trainers):
        if trainer.agent.step < lead:
            t = trainer.run.train
            print(f"seed {t.seed} resumes at step {trainer.agent.step}, behind step {lead}: training it alone up to "
                  "there, then stacked", file=sys.stderr)
            with progress_bar(total=lead, desc=f"{t.mode} {t.env} seed {t.seed} to step {lead}",
                              enabled=t.progress) as bar:
                bar.update(trainer.agent.step)
                try:
                    if trainer.advance(min(lead, trainer.stop_step), bar):
                        return False
                except TrainingDiverged as exc:
                    failures[t.seed] = exc
                    trainers.remove(trainer)
    if any(trainer.agent.step < lead for trainer in trainers):
        return False
    stop_step = min((trainer.stop_step for trainer in trainers), default=lead)
    now = time.perf_counter()
    for trainer in trainers:
        trainer.stop_step, trainer.window_start = stop_step, now  # steps/s of the stacked steps only
    return True


def stack(trainers: Sequence[Trainer]) -> StackedAgents:
    stacked = StackedAgents([trainer.agent for trainer in trainers])
    if trainers[0].run.train.compile:  # (each agent's own compiled losses are never called here: lazy)
        stacked.compile(**compile_options(trainers[0].run.train))
    return stacked


def train_level_seeds(run: ResolvedRun, trainers: list[Trainer], failures: dict[int, TrainingDiverged]) -> None:
    """Seeds at one step, updated as one StackedAgents to this call's stop step; a seed whose loss
    diverges stops at its last good checkpoint and leaves `trainers` (the others go on stacked)."""
    t = run.train
    stacked = stack(trainers)
    stop_step = trainers[0].stop_step
    label = ",".join(str(trainer.run.train.seed) for trainer in trainers)
    with progress_bar(total=run.steps, desc=f"{t.mode} {t.env} seeds {label}", enabled=t.progress) as bar, \
            progress_bar(total=run.steps, desc="", enabled=False) as silent:
        bar.update(stacked.step)
        while stacked.step < stop_step:
            if trainers[0].signal_stop.requested:  # Ctrl-C / SIGTERM: every seed ends at the next log row
                stop_step = min(trainer.stop_at_next_log_row(stacked.step) for trainer in trainers)
            batches = [trainer.sampler.sample(run.agent.batch_size) for trainer in trainers]
            metrics = stacked.update(batches)
            step = stacked.step
            if trainers[0].saves_at(step):
                stacked.write_back()  # the checkpoints read the agents
            stop = diverged = False
            for i, trainer in enumerate(trainers):
                priorities = None if stacked.priorities is None else stacked.priorities[i]
                try:
                    stop |= trainer.record(step, batches[i], {name: value[i] for name, value in metrics.items()},
                                           priorities, stacked.latents[i], bar if i == 0 else silent)
                except TrainingDiverged as exc:  # raised before its checkpoint: the last good one stays
                    failures[trainer.run.train.seed], diverged = exc, True
            if diverged:
                stacked.write_back()  # the others' state, to stack them again without the diverged seeds
                trainers[:] = [trainer for trainer in trainers if trainer.run.train.seed not in failures]
                going_on = ",".join(str(trainer.run.train.seed) for trainer in trainers)
                print(f"seeds {sorted(failures)} diverged (their last good checkpoints are kept); "
                      + (f"seeds {going_on} go on" if trainers else "no seed left"), file=sys.stderr)
                if not trainers:
                    return
                stacked = stack(trainers)
            if stop:
                break
    stacked.write_back()


def train_stacked(run: ResolvedRun, seeds: Sequence[int]) -> list[dict[str, Any] | None]:
    """Train (or resume) several seeds in one process: one Trainer per seed (its own run folder,
    sampler, checkpoints, metrics, evaluation) around one StackedAgents update for all of them.
    Seeds whose run has finished are skipped (named on stderr; --overwrite redoes them). Returns
    the final.json contents of the seeds trained (None where the call stopped early); raises
    SeedsDiverged, after the other seeds are done, when some seeds diverged."""
    t = run.train
    finished = [seed for seed in seeds if not t.overwrite and RunDir(t.runs_dir, t.env, t.mode, seed).is_complete()]
    if finished:
        print(f"seeds {finished} have finished runs in {t.runs_dir}: skipped (pass --overwrite to redo them)",
              file=sys.stderr)
    seeds = [seed for seed in seeds if seed not in finished]
    if not seeds:
        return []
    with contextlib.ExitStack() as held:  # every seed's folder for this process, before the data is read
        for seed in seeds:
            held.enter_context(RunDir(t.runs_dir, t.env, t.mode, seed).claim())
        return _train_stacked(run, seeds, held)


def _train_stacked(run: ResolvedRun, seeds: Sequence[int],
                   held: contextlib.ExitStack) -> list[dict[str, Any] | None]:
    """train_stacked's work once `held` holds every seed's folder; the Trainers' claims and W&B runs
    join it, to be let go when the call ends."""
    t = run.train
    dataset = load_dataset(t.env, t.data_dir, show_progress=t.progress)  # read once, sampled by every seed
    trainers = [Trainer(dataclasses.replace(run, train=dataclasses.replace(t, seed=seed)), dataset) for seed in seeds]
    for trainer in trainers:
        held.callback(trainer.claim.release)
    mirrors: list[WandbMirror] = []  # (with --wandb) each seed's W&B run, closed when the call ends
    held.enter_context(closing(mirrors))
    for trainer in trainers:
        trainer.begin()
        mirrors.extend(trainer.mirrors)
    failures: dict[int, TrainingDiverged] = {}
    with StopOnSignal() as signal_stop:
        for trainer in trainers:
            trainer.signal_stop = signal_stop
        # (a chunk or time limit may end the call before the seeds are level: then they just stop)
        if catch_up(trainers, failures) and trainers:
            train_level_seeds(run, trainers, failures)
    results = [trainer.end() for trainer in trainers]
    if failures:
        raise SeedsDiverged(failures, results)
    if signal_stop.requested and any(result is None for result in results):
        where = ", ".join(str(trainer.checkpoint_path) for trainer in trainers)
        raise signal_stop.interrupted(where, min(trainer.agent.step for trainer in trainers), run.steps)
    return results
