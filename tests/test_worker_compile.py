"""--compile for the workers (corl/shared/compiled.py): the compiled update computes what the eager
one does, a compiled run logs the eager run's numbers and resumes eager, and bad options say so
before any data is read.

torch.compile runs here with the aot_eager backend: Dynamo traces each loss method as one graph
(fullgraph: any graph break fails) and AOTAutograd builds its backward, without inductor's code
generation, which would take minutes on a 2-core CPU. Inductor's agreement (~1e-7 after a few
updates) is what benchmarks/worker_speed.py --compile measures (docs/workers.md).
"""
from __future__ import annotations

import itertools

import pytest
import torch

from benchmarks.worker_speed import build_ours, float_state, random_batches, random_sequences
from corl import any_percent_bc, iql, td3_bc
from corl.shared import config as worker_config
from corl.shared.compiled import CompiledLosses
from tests.worker_helpers import ENV, metrics_rows, smoke_run


def build(algo: str):
    """Our worker at the benchmark's sizes (maze2d + a 10-d intent), CORL's defaults, seed 0."""
    torch.manual_seed(0)
    return build_ours(algo, "cpu")


@pytest.mark.parametrize("algo", ["bc", "td3_bc", "iql", "awac", "cql", "dt", "idql"])
def test_the_compiled_update_computes_the_eager_one(algo):
    """Same weights, same batches, same draws: after 6 updates (TD3+BC: three actor steps and three
    skipped) the metrics and every weight and Adam moment agree to float rounding (CQL: its one
    backward pass of four losses; DT and IDQL: their dropout, whose draws aot_eager leaves eager)."""
    eager, compiled_algo = build(algo), build(algo)
    compiled_algo.compile(backend="aot_eager")
    assert compiled_algo.compiled and not eager.compiled
    assert all(name in vars(compiled_algo) for name in compiled_algo.LOSS_METHODS)
    batches = random_sequences(3, 8, "cpu") if algo == "dt" else random_batches(3, "cpu")
    for step, batch in zip(range(6), itertools.cycle(batches)):
        torch.manual_seed(step)
        eager_metrics = eager.update(batch)
        torch.manual_seed(step)
        compiled_metrics = compiled_algo.update(batch)
        assert eager_metrics.keys() == compiled_metrics.keys()
        for key in eager_metrics:
            torch.testing.assert_close(compiled_metrics[key], eager_metrics[key], rtol=1e-5, atol=1e-6)
    eager_state, compiled_state = float_state(eager.state_dict()), float_state(compiled_algo.state_dict())
    assert eager_state.keys() == compiled_state.keys() and len(eager_state) > 4
    initial = float_state(build(algo).state_dict())  # (no optimiser state yet)
    assert [name for name, value in initial.items() if not torch.equal(value, eager_state[name])]  # weights moved
    for name, value in eager_state.items():
        torch.testing.assert_close(compiled_state[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("algo", ["bc", "td3_bc", "iql", "awac", "cql", "dt", "idql"])
def test_every_worker_names_its_loss_methods(algo):
    worker = build(algo)
    assert isinstance(worker, CompiledLosses) and worker.LOSS_METHODS
    assert all(callable(getattr(type(worker), name, None)) for name in worker.LOSS_METHODS)


def test_a_class_without_loss_methods_cannot_compile():
    with pytest.raises(NotImplementedError, match="names no LOSS_METHODS"):
        CompiledLosses().compile()


def test_compile_errors_name_the_fix(data_dir, tmp_path):
    def parse(algo, config_cls, *extra):
        cfg = worker_config.parse_worker_config(config_cls, algo, ["--env", ENV, *extra])
        worker_config.validate_worker_config(cfg)

    with pytest.raises(ValueError, match="--compile_mode reduce-overhead needs --compile"):
        parse("bc", any_percent_bc.BCConfig, "--compile_mode", "reduce-overhead")
    with pytest.raises(ValueError, match="unknown --compile_mode 'fastest'; choose one of default, reduce-overhead"):
        parse("bc", any_percent_bc.BCConfig, "--compile", "true", "--compile_mode", "fastest")
    parse("td3_bc", td3_bc.TD3BCConfig, "--compile", "true", "--compile_mode", "reduce-overhead")  # accepted


def test_a_compiled_run_logs_the_eager_numbers_and_resumes_eager(data_dir, tmp_path, monkeypatch):
    """TD3+BC smoke runs: compiled (aot_eager) from start to end == eager from start to end, and a
    run compiled for its first 100 steps and resumed eager from the checkpoint == both."""
    original = CompiledLosses.compile
    calls = []

    def compile_with_aot_eager(self, **kwargs):
        calls.append(kwargs)
        original(self, backend="aot_eager", **kwargs)

    monkeypatch.setattr(CompiledLosses, "compile", compile_with_aot_eager)
    run = lambda root, *extra: smoke_run(td3_bc.train, td3_bc.TD3BCConfig, "td3_bc", data_dir, root,  # noqa: E731
                                         "random", *extra)
    eager = run(tmp_path / "eager")
    assert calls == []
    compiled_result = run(tmp_path / "compiled", "--compile", "true")
    assert calls == [{}]
    assert run(tmp_path / "mixed", "--compile", "true", "--compile_mode", "reduce-overhead",
               "--chunk_steps", "100") is None
    assert calls[-1] == {"mode": "reduce-overhead"}  # the mode reaches torch.compile
    mixed = run(tmp_path / "mixed")  # the second half eager, from the compiled half's checkpoint
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]  # noqa: E731
    reference = strip(metrics_rows(tmp_path / "eager", "td3_bc", "random"))
    for root, result in (("compiled", compiled_result), ("mixed", mixed)):
        rows = strip(metrics_rows(tmp_path / root, "td3_bc", "random"))
        assert [r["step"] for r in rows] == [r["step"] for r in reference]
        for row, ref in zip(rows, reference):
            for key in ("critic_loss", "actor_loss"):
                assert float(row[key]) == pytest.approx(float(ref[key]), rel=1e-5, abs=1e-6), (root, row["step"], key)
        assert result["normalized_score"] == pytest.approx(eager["normalized_score"], abs=1e-6)


def test_compile_shadows_the_loss_methods_and_marks_one_graph_step_per_update(monkeypatch):
    """compile() shadows exactly the named methods on the instance (the class keeps the eager ones)
    and its update begins one CUDA-graph step (so IQL's three graphs share one step's outputs)."""
    algo = build("iql")
    algo.compile(backend="aot_eager")
    shadowed = set(vars(algo)) - set(vars(build("iql")))
    assert shadowed == {*algo.LOSS_METHODS, "update"}
    assert type(algo)._value_loss is iql.IQL._value_loss
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(algo.total_it))
    for batch in random_batches(3, "cpu"):
        algo.update(batch)
    assert marks == [0, 1, 2] and algo.total_it == 3  # once per update, before it
