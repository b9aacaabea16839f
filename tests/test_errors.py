"""Every entry point reports the user's input errors the same way: one `error:` line, exit status 2,
through the one marker class in common/errors.py; a bug (any other exception) still raises."""
import pytest

from common.checkpoint import CheckpointError
from common.errors import INPUT_ERRORS, DiskFull, InputError, report_input_error
from common.metrics import TrainingDiverged
from common.run_dir import RunAlreadyComplete
from corl.any_percent_bc import BCConfig
from corl.shared.config import worker_main
from tasks.datasets import DatasetError, DatasetNotFoundError
from tasks.registry import UnknownTaskError, get_task

# each user-facing error keeps its built-in base, so code that caught e.g. KeyError still does
USER_ERRORS = [(CheckpointError, RuntimeError), (RunAlreadyComplete, RuntimeError),
               (TrainingDiverged, FloatingPointError), (DatasetError, RuntimeError),
               (DatasetNotFoundError, RuntimeError), (UnknownTaskError, KeyError), (DiskFull, OSError)]


@pytest.mark.parametrize("cls,builtin", USER_ERRORS, ids=[c.__name__ for c, _ in USER_ERRORS])
def test_user_errors_carry_the_marker_and_their_builtin_base(cls, builtin):
    assert issubclass(cls, InputError) and issubclass(cls, builtin)
    assert isinstance(cls("x"), INPUT_ERRORS)


def test_report_prints_one_line_and_returns_2(capsys):
    with pytest.raises(UnknownTaskError) as info:
        get_task("maze2d-mediun-v1")
    assert report_input_error(info.value) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "maze2d-medium-v1" in err
    assert not err.startswith("error: '")  # KeyError's quoting is not in the message


class _NewInputError(InputError, RuntimeError):
    """An error added later: it only needs the marker to be reported by every entry point."""


def _raising(exc):
    def train(cfg):
        raise exc
    return train


def test_worker_main_reports_any_input_error_and_lets_bugs_raise(capsys):
    argv = ["--env", "maze2d-umaze-v1", "--profile", "smoke", "--device", "cpu"]
    assert worker_main(BCConfig, "bc", _raising(_NewInputError("the problem; the fix")), argv) == 2
    assert capsys.readouterr().err == "error: the problem; the fix\n"
    with pytest.raises(ZeroDivisionError):
        worker_main(BCConfig, "bc", _raising(ZeroDivisionError("a bug")), argv)


def test_a_worker_asking_for_an_unfinished_managers_intents_is_told_how_far_it_is(data_dir, tmp_path, capsys):
    """Not 'no checkpoint at .../manager.pt': the Manager run is there, stopped or still training."""
    from common.run_dir import RunDir
    from corl.__main__ import main as corl_main
    from manager.__main__ import main as manager_main

    runs = tmp_path / "runs"
    assert manager_main(["train", "--mode", "manager", "--env", "maze2d-umaze-v1", "--profile", "smoke", "--steps",
                         "200", "--chunk-steps", "100", "--log-every", "50", "--checkpoint-every", "100",
                         "--runs-dir", str(runs), "--data-dir", str(data_dir), "--no-progress"]) == 0
    worker = ["bc", "--env", "maze2d-umaze-v1", "--profile", "smoke", "--intent", "manager", "--runs_dir", str(runs),
              "--data_dir", str(data_dir), "--progress", "false"]
    capsys.readouterr()
    assert corl_main(worker) == 2
    manager_dir = runs / "maze2d-umaze-v1" / "manager" / "seed0"
    err = capsys.readouterr().err
    assert f"no manager.pt in {manager_dir} yet: that Manager run has not finished (stopped, step 100 of 200 " \
           "logged); wait for it, or resume it" in err and "make manager ENV=maze2d-umaze-v1" in err
    with RunDir(runs, "maze2d-umaze-v1", "manager", seed=0).claim():  # as a Manager training now would hold it
        assert corl_main(worker) == 2
    err = capsys.readouterr().err
    assert "(training now, step 100 of 200 logged, in pid " in err


def test_an_unreadable_checkpoint_of_a_run_being_resumed_says_how_to_go_on(data_dir, tmp_path, capsys):
    """A truncated checkpoint.pt (a disk error, a copy cut short) of a worker or a Manager run: one line
    naming the file and --overwrite, which then starts the run again."""
    from corl.__main__ import main as corl_main
    from manager.__main__ import main as manager_main

    runs = tmp_path / "runs"
    worker = ["bc", "--env", "maze2d-umaze-v1", "--profile", "smoke", "--steps", "200", "--runs_dir", str(runs),
              "--data_dir", str(data_dir), "--progress", "false"]
    manager = ["train", "--mode", "manager", "--env", "maze2d-umaze-v1", "--profile", "smoke", "--steps", "200",
               "--log-every", "50", "--checkpoint-every", "100", "--runs-dir", str(runs), "--data-dir", str(data_dir),
               "--no-progress"]
    for main, argv, run in ((corl_main, worker, runs / "maze2d-umaze-v1" / "bc" / "none" / "seed0"),
                            (manager_main, manager, runs / "maze2d-umaze-v1" / "manager" / "seed0")):
        chunk = ["--chunk_steps", "100"] if main is corl_main else ["--chunk-steps", "100"]
        assert main([*argv, *chunk]) == 0
        checkpoint = run / "checkpoint.pt"
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {checkpoint} is not a readable checkpoint") and err.count("\n") == 1
        assert err.rstrip().endswith("To go on: pass --overwrite to start the run again from step 0.")
        overwrite = ["--overwrite", "true"] if main is corl_main else ["--overwrite"]
        assert main([*argv, *overwrite]) == 0
        assert (run / "final.json").is_file()
