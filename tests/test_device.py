"""`--device`: the names every entry point takes, and one `error:` line for a name no run could use or a
device this machine lacks, before any data is read or any grid cell starts."""
import pytest
import torch

import common.device as device_module
from common.device import DEVICE_CHOICES, check_device_name, resolve_device, resolve_profile

ENV = "maze2d-umaze-v1"


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_the_choices_pass_the_name_check(name):
    check_device_name(name)


@pytest.mark.parametrize("name", ["foo", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:0:1", "xpu", "meta", "cpu:0", ""])
def test_other_names_are_refused_naming_the_choices(name):
    with pytest.raises(ValueError, match="choose auto \\| cpu \\| cuda \\| cuda:N \\| mps") as info:
        resolve_device(name)
    assert repr(name) in str(info.value)


def test_auto_and_cpu(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_profile("auto", resolve_device("auto")) == "quick"


def test_cuda_without_a_gpu_says_use_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"--device {name} was asked for but no CUDA device is available; "
                                             "use --device cpu"):
            resolve_device(name)


def test_a_cuda_index_past_the_machines_gpus_names_the_ones_there(monkeypatch):
    monkeypatch.setattr(device_module, "_cuda_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"--device cuda:2: this machine shows 2 CUDA device\(s\) \(cuda:0, cuda:1\)"):
        resolve_device("cuda:2")


def test_mps_only_where_torch_has_it(monkeypatch):
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match="no MPS device here .*use --device cpu"):
        resolve_device("mps")
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    assert resolve_profile("auto", torch.device("mps")) == "quick"


def _one_error_line(capsys, expected: str) -> None:
    err = capsys.readouterr().err
    assert err == f"error: {expected}\n", err


BAD = f"--device 'foo' is not a device this project runs on; choose {DEVICE_CHOICES}"


def test_every_entry_point_reports_a_bad_device_in_one_line(tmp_path, capsys):
    """The worker, the Manager, re-scoring, the demo and the grid: exit 2, one line, nothing written."""
    from corl.__main__ import main as corl_main
    from manager.__main__ import main as manager_main
    from runs.__main__ import main as runs_main
    from runs.demo import main as demo_main

    runs = tmp_path / "runs"
    calls = [
        lambda: corl_main(["bc", "--env", ENV, "--device", "foo", "--runs_dir", str(runs)]),
        lambda: manager_main(["train", "--mode", "manager", "--env", ENV, "--device", "foo", "--runs-dir", str(runs)]),
        lambda: corl_main(["evaluate", str(runs / ENV / "bc" / "none" / "seed0"), "--device", "foo"]),
        lambda: demo_main(["--device", "foo", "--runs-dir", str(runs)]),
        lambda: runs_main(["table2", "--envs", ENV, "--algos", "bc", "--seeds", "0", "--profile", "smoke",
                           "--device", "foo", "--runs-dir", str(runs)]),
    ]
    for call in calls:
        assert call() == 2
        _one_error_line(capsys, BAD)
    assert not runs.exists()  # no run folder, no grid table, no dataset made


def test_the_grid_checks_the_device_on_this_machine_for_local_cells_only(tmp_path, capsys, monkeypatch):
    from runs.__main__ import main as runs_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runs = tmp_path / "runs"
    argv = ["table2", "--envs", ENV, "--algos", "bc", "--seeds", "0", "--profile", "smoke", "--runs-dir", str(runs)]
    assert runs_main([*argv, "--device", "cuda"]) == 2  # local cells would each fail on this machine
    _one_error_line(capsys, "--device cuda was asked for but no CUDA device is available; use --device cpu")
    assert not runs.exists()
    # submitit's cells may run elsewhere (a cluster's GPU nodes): only the name is checked here
    assert runs_main([*argv, "--device", "cuda", "--engine", "submitit", "--dry-run"]) == 0
    assert runs_main([*argv, "--device", "foo", "--engine", "submitit", "--dry-run"]) == 2
    _one_error_line(capsys, BAD)

    monkeypatch.setattr(device_module, "_cuda_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runs_main([*argv, "--device", "cuda:1", "--gpus", "0,1", "--dry-run"]) == 2
    _one_error_line(capsys, "--device cuda:1 with --gpus: each cell sees only the one GPU it is given, as cuda:0; "
                            "use --device cuda")
