"""`--compile` for the workers: each loss computation of an update through `torch.compile`.

A worker's update is a few phases, each a loss computation, its backward pass and an optimiser
step (TD3+BC: the critics, then the actor on the updated critic). A worker class opts in by naming
the methods that compute its losses in `LOSS_METHODS`. Each such method must be a pure function of
its tensor arguments and the weights: its random draws made by the caller, eagerly, from the same
generator in the same order as before (so compiled and eager runs draw the same numbers), no host
syncs, static shapes. `compile()` then replaces each method on the instance by its compiled version
(one graph, `fullgraph=True`; AOTAutograd compiles the backward too), while the draws, the
optimiser steps and the target updates stay eager, as the Manager's `Agent.compile` does. One update
is one CUDA-graph step (`torch.compiler.cudagraph_mark_step_begin` before each), so the outputs of
one loss graph stay valid for the losses after it in the same update.

The compiled update computes what the eager one does up to float reordering: the weights agree to
~1e-6 after a few updates (tests/test_worker_compile.py; benchmarks/worker_speed.py --compile reports
the gap). Checkpoints are unchanged (the modules are the same objects), so a compiled run resumes
eager and the other way round.
"""
from __future__ import annotations

from typing import Any

import torch

class CompiledLosses:
    """Mixin of the worker classes whose update can be compiled (see the module docstring)."""

    LOSS_METHODS: tuple[str, ...] = ()  # names of the methods that compute the update's losses

    def compile(self, **compile_kwargs: Any) -> None:
        """torch.compile each of LOSS_METHODS on this instance (backend/mode from compile_kwargs)."""
        if not self.LOSS_METHODS:
            raise NotImplementedError(f"{type(self).__name__} names no LOSS_METHODS to compile")
        options = {"fullgraph": True, "dynamic": False, **compile_kwargs}
        for name in self.LOSS_METHODS:
            setattr(self, name, torch.compile(getattr(self, name), **options))
        eager_update = self.update

        def update_as_one_step(batch):
            # CUDA graphs (mode reduce-overhead) reuse a graph's output memory once a new step
            # begins, and by default every compiled call without a pending backward begins one:
            # IQL's V-loss outputs (the advantage, V(s')) would be overwritten before its Q and actor
            # losses read them. Marked by hand, a step is one whole update (a no-op without graphs).
            torch.compiler.cudagraph_mark_step_begin()
            return eager_update(batch)

        self.update = update_as_one_step

    @property
    def compiled(self) -> bool:
        """Whether compile() has replaced the loss methods."""
        return any(name in vars(self) for name in self.LOSS_METHODS)
