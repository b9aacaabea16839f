"""`make demo` (python -m runs.demo) at smoke size: the whole hierarchy through the real commands."""
from __future__ import annotations

import subprocess

import pytest

from runs import demo


def test_demo_runs_the_hierarchy_then_skips_finished_steps(data_dir, tmp_path, monkeypatch, capsys):
    cfg = demo.DemoConfig(profile="smoke", device="cpu", manager_steps=100, runs_dir=str(tmp_path / "runs"),
                          data_dir=str(data_dir))
    results = demo.run_demo(cfg)
    assert list(results) == ["none", "random", "manager"]
    assert all(r["steps"] == 200 and r["eval_episodes"] == 2 for r in results.values())
    assert (tmp_path / "runs" / cfg.env / "manager" / "seed0" / "manager.pt").is_file()
    table = (tmp_path / "runs" / cfg.env / "demo_bc_seed0.md").read_text()
    assert all(f"| bc | {intent} | 200 | 2 |" in table for intent in results)

    def must_not_run(*args, **kwargs):
        raise AssertionError(f"a finished step was run again: {args}")

    monkeypatch.setattr(subprocess, "Popen", must_not_run)
    assert demo.run_demo(cfg) == results
    assert capsys.readouterr().out.count("done already") == 4


def test_demo_commands_match_the_make_targets():
    cfg = demo.DemoConfig(env="maze2d-medium-v1", seed=2)
    manager = demo.manager_command(cfg, "quick")
    assert manager[1:6] == ["-m", "manager", "train", "--mode", "manager"]
    assert manager[-2:] == ["--steps", str(demo.CPU_MANAGER_STEPS)]
    assert "--steps" not in demo.manager_command(cfg, "paper")  # the paper's 300K on a GPU
    worker = demo.worker_command(cfg, "paper", "manager")
    assert worker[1:4] == ["-m", "corl", "bc"]
    assert worker[worker.index("--manager") + 1].endswith("maze2d-medium-v1/manager/seed2/manager.pt")
    assert "--manager" not in demo.worker_command(cfg, "paper", "none")
    assert "--steps" not in worker and "--final_eval_episodes" not in worker  # the paper protocol
    quick = demo.worker_command(cfg, "quick", "manager")
    assert quick[quick.index("--steps") + 1] == str(demo.CPU_WORKER_STEPS) == quick[quick.index("--eval_every") + 1]
    assert quick[quick.index("--final_eval_episodes") + 1] == str(demo.CPU_EVAL_EPISODES)


def test_demo_reports_a_failed_step(monkeypatch, capsys, tmp_path):
    def fail(command, check):
        raise subprocess.CalledProcessError(3, command)

    monkeypatch.setattr(demo, "run_step", lambda command, final: fail(command, True))
    monkeypatch.setattr("tasks.load_dataset", lambda *a, **k: None)
    assert demo.main(["--runs-dir", str(tmp_path), "--device", "cpu"]) == 1
    assert "finished steps are kept" in capsys.readouterr().err


def test_a_step_interrupted_by_ctrl_c_is_waited_for_then_the_demo_stops(monkeypatch, capsys, tmp_path):
    """Ctrl-C reaches the demo and its running step alike: the demo waits while the step writes its
    checkpoint (subprocess.run would kill it after 0.25 s), then stops with status 130."""
    waits = []

    class CtrlCStep:
        def __init__(self, command):
            self.command = command

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def wait(self):
            waits.append(len(waits))
            if len(waits) == 1:
                raise KeyboardInterrupt
            return 2  # the step's own exit after its checkpoint

    monkeypatch.setattr(subprocess, "Popen", CtrlCStep)
    monkeypatch.setattr("tasks.load_dataset", lambda *a, **k: None)
    assert demo.main(["--runs-dir", str(tmp_path), "--device", "cpu"]) == 130
    assert waits == [0, 1] and "interrupted; run it again" in capsys.readouterr().err
    monkeypatch.setattr(subprocess, "Popen", lambda command: type("Exit3", (CtrlCStep,), {"wait": lambda self: 3})(command))
    with pytest.raises(subprocess.CalledProcessError) as failed:  # a step that fails is reported as one
        demo.run_step(["python", "-c", "exit(3)"], tmp_path / "final.json")
    assert failed.value.returncode == 3
