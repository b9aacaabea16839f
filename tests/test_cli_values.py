"""Numbers and switches on the command line read the same way in every entry point: a step count as
100000, 100_000 or 1e5; a switch as true/false (yes/no, on/off, 1/0), never a stray word read as True;
a value of the wrong kind is one `error:` line naming the option, not a pyrallis traceback."""
import dataclasses

import pytest

from common.cli import boolean, integer
from corl.any_percent_bc import BCConfig
from corl.dt import DTConfig
from corl.shared.config import parse_worker_config, worker_main

ENV = "maze2d-umaze-v1"


@pytest.mark.parametrize("text,value", [("100000", 100000), ("100_000", 100000), ("1e5", 100000), ("1.5e3", 1500),
                                        (" 7 ", 7), (12, 12), ("-3", -3), (2.0, 2)])
def test_integer_reads_whole_numbers_however_written(text, value):
    assert integer(text) == value and type(integer(text)) is int


@pytest.mark.parametrize("text", ["2.5", "abc", "", "1e-3", True, "nan"])
def test_integer_refuses_what_is_not_a_whole_number(text):
    with pytest.raises(ValueError, match="is not a whole number"):
        integer(text)


@pytest.mark.parametrize("text,value", [("true", True), ("True", True), ("yes", True), ("on", True), ("1", True),
                                        (1, True), ("false", False), ("FALSE", False), ("no", False),
                                        ("off", False), ("0", False), (0, False), (False, False)])
def test_boolean_reads_the_usual_words(text, value):
    assert boolean(text) is value


@pytest.mark.parametrize("text", ["maybe", "flase", "", "2", 2])
def test_boolean_refuses_other_words(text):
    with pytest.raises(ValueError, match="is not true or false"):
        boolean(text)


def test_a_worker_reads_step_counts_and_switches_strictly():
    cfg = parse_worker_config(BCConfig, "bc", ["--env", ENV, "--steps", "1e5", "--eval_every", "5_000",
                                                "--normalize", "false", "--actor_lr", "1e-4"])
    assert (cfg.steps, cfg.eval_every, cfg.normalize, cfg.actor_lr) == (100000, 5000, False, 1e-4)
    dt = parse_worker_config(DTConfig, "dt", ["--env", ENV, "--betas", "[0.8, 0.99]", "--episode_len", "1e3"])
    assert dt.betas == (0.8, 0.99) and dt.episode_len == 1000
    defaults = parse_worker_config(BCConfig, "bc", ["--env", ENV])
    assert defaults.normalize is True and defaults.steps is None  # the preset's and the profile's values stand


@pytest.mark.parametrize("argv,message", [
    (["--normalize", "flase"], "--normalize flase: expected true or false"),  # pyrallis alone: True
    (["--steps", "2.5"], "--steps 2.5: expected a whole number (100000, 100_000 or 1e5)"),
    (["--eval_every", "abc"], "--eval_every abc: expected a whole number"),
    (["--actor_lr", "fast"], "--actor_lr fast: expected a number"),
])
def test_a_worker_names_a_value_of_the_wrong_kind_in_one_line(argv, message, capsys, tmp_path):
    assert worker_main(BCConfig, "bc", lambda cfg: pytest.fail("trained"),
                       ["--env", ENV, "--runs_dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_the_manager_reads_step_counts_the_same_way(capsys):
    from manager.__main__ import build_parser

    args = build_parser().parse_args(["train", "--mode", "manager", "--env", ENV, "--steps", "3e5"])
    assert args.steps == 300000
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--mode", "manager", "--env", ENV, "--steps", "2.5"])
    assert "argument --steps: invalid integer value: '2.5'" in capsys.readouterr().err


@pytest.mark.parametrize("text,message", [
    ("stepz: 100\n", "sets 'stepz', which is not a field of this worker (did you mean steps?)"),
    ("steps: [1\n", "is not valid YAML at line 2, column 1"),
    ("- 1\n", "must hold field: value lines (a YAML mapping), got a list"),
    ("steps: abc\n", None),  # the value's own message
])
def test_a_config_file_pyrallis_would_fail_on_is_one_line(text, message, tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    assert worker_main(BCConfig, "bc", lambda cfg: pytest.fail("trained"),
                       ["--env", ENV, "--config_path", str(path)]) == 2
    err = capsys.readouterr().err
    expected = f"error: --config_path {path} {message}" if message else "error: --steps abc: expected a whole number"
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert worker_main(BCConfig, "bc", lambda cfg: pytest.fail("trained"),
                       ["--env", ENV, "--config_path", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: cannot read it (No such file or directory)" in capsys.readouterr().err


def test_a_config_file_sets_the_fields_it_names_over_the_preset(tmp_path):
    """Defaults <- preset <- profile knobs <- the file <- the command line (the file used to replace the
    preset: a file naming one field reset every per-domain value to the dataclass default)."""
    path = tmp_path / "my.yaml"
    path.write_text("steps: 3e3\nnormalize: no\nactor_lr: 0.001\n")
    cfg = parse_worker_config(BCConfig, "bc", ["--env", ENV, "--config_path", str(path), "--actor_lr", "0.002"])
    assert (cfg.steps, cfg.normalize, cfg.actor_lr) == (3000, False, 0.002)  # the command line has the last word

    from corl.td3_bc import TD3BCConfig

    antmaze = "antmaze-umaze-v2"
    by_flags = parse_worker_config(TD3BCConfig, "td3_bc", ["--env", antmaze, "--profile", "paper"])
    assert by_flags.normalize_reward is True  # CORL's antmaze preset, not the dataclass default
    path.write_text(f"env: {antmaze}\nprofile: paper\nalpha: 5.0\n")  # the file picks the env's preset too
    by_file = parse_worker_config(TD3BCConfig, "td3_bc", ["--config_path", str(path)])
    assert by_file == dataclasses.replace(by_flags, alpha=5.0)
    dt_flags = parse_worker_config(DTConfig, "dt", ["--env", "maze2d-medium-v1", "--profile", "paper"])
    path.write_text("env: maze2d-medium-v1\nprofile: paper\n")
    assert parse_worker_config(DTConfig, "dt", [f"--config_path={path}"]) == dt_flags


def test_a_config_file_for_another_worker_is_refused(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("algo: bc_10\n")
    with pytest.raises(ValueError, match="sets algo bc_10, this command runs bc: run it with --algo bc_10"):
        parse_worker_config(BCConfig, "bc", ["--config_path", str(path)])
    assert parse_worker_config(BCConfig, "bc_10", ["--algo", "bc_10", "--config_path", str(path)]).frac == 0.1


def _worker_config_class(algo: str):
    import importlib

    from corl.__main__ import WORKERS
    from corl.shared.config import WorkerConfig

    module = importlib.import_module(WORKERS[algo])
    return next(v for k, v in vars(module).items()
                if isinstance(v, type) and issubclass(v, WorkerConfig) and v is not WorkerConfig)


@pytest.mark.parametrize("algo", ["bc", "bc_10", "awac", "iql", "td3_bc", "cql", "dt", "idql"])
def test_every_preset_is_inside_the_ranges_the_checks_hold(algo):
    """The range checks refuse typos, never CORL's own settings: every worker x domain x profile passes."""
    from corl.shared.config import validate_worker_config

    cls = _worker_config_class(algo)
    for env in ("maze2d-umaze-v1", "antmaze-umaze-v2", "halfcheetah-medium-v2"):
        for profile in ("paper", "quick", "smoke"):
            validate_worker_config(parse_worker_config(cls, algo, ["--algo", algo, "--env", env, "--profile", profile]))


@pytest.mark.parametrize("algo,argv,message", [
    ("td3_bc", ["--discount", "9.9"], "--discount must be in (0, 1], got 9.9 (default: 0.99)"),
    ("awac", ["--tau", "0"], "--tau must be in (0, 1], got 0"),
    ("iql", ["--iql_tau", "1"], "--iql_tau must be in (0, 1), got 1 (default: 0.7)"),
    ("bc", ["--actor_lr=-3e-4"], "--actor_lr must be positive, got -0.0003"),
    ("bc", ["--frac", "0"], "--frac must be in (0, 1], got 0"),
    ("cql", ["--soft_target_update_rate", "2"], "--soft_target_update_rate must be in (0, 1], got 2"),
    ("dt", ["--attention_dropout", "1"], "--attention_dropout must be in [0, 1), got 1"),
    ("iql", ["--actor_dropout", "1.5"], "--actor_dropout must be in [0, 1), got 1.5 (default: none)"),
    ("dt", ["--seq_len", "0"], "--seq_len must be at least 1, got 0"),
    ("idql", ["--diffusion_steps", "0"], "--diffusion_steps must be at least 1, got 0"),
])
def test_an_algorithm_setting_out_of_its_range_is_refused_before_any_work(algo, argv, message, tmp_path, capsys):
    from corl.__main__ import main as corl_main

    runs = tmp_path / "runs"
    assert corl_main([algo, "--env", ENV, "--runs_dir", str(runs), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not runs.exists()


def test_a_workers_help_names_the_command_and_opens_with_its_docstring(capsys):
    from corl.__main__ import main as corl_main
    import corl.td3_bc

    with pytest.raises(SystemExit) as info:
        corl_main(["td3_bc", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m corl td3_bc [-h]")
    assert corl.td3_bc.__doc__.splitlines()[0] in out  # the file's docstring, as written
    assert "--discount float" in out and "discount factor (default: 0.99)" in out


@pytest.mark.parametrize("argv,message", [
    (["--betas", "abc"], "--betas abc: expected a list of numbers in brackets, e.g. [0.5, 0.5]"),
    (["--betas", "[0.9]"], "--betas [0.9]: expected a list of numbers in brackets, e.g. [0.5, 0.5]"),
    (["--target_returns", "x"], "--target_returns x: expected a list of numbers in brackets"),
])
def test_a_list_setting_of_the_wrong_form_says_how_to_write_one(argv, message, capsys):
    assert worker_main(DTConfig, "dt", lambda cfg: pytest.fail("trained"), ["--env", ENV, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
