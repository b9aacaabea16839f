"""Every entry point reports the user's input errors the same way: one `error:` line, exit status 2,
through the one marker class in common/errors.py; a bug (any other exception) still raises."""
import pytest

from common.checkpoint import CheckpointError
from common.errors import INPUT_ERRORS, InputError, report_input_error
from common.metrics import TrainingDiverged
from common.run_dir import RunAlreadyComplete
from corl.any_percent_bc import BCConfig
from corl.shared.config import worker_main
from tasks.datasets import DatasetError, DatasetNotFoundError
from tasks.registry import UnknownTaskError, get_task

# each user-facing error keeps its built-in base, so code that caught e.g. KeyError still does
USER_ERRORS = [(CheckpointError, RuntimeError), (RunAlreadyComplete, RuntimeError),
               (TrainingDiverged, FloatingPointError), (DatasetError, RuntimeError),
               (DatasetNotFoundError, RuntimeError), (UnknownTaskError, KeyError)]


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
