"""Read D4RL's goal-reaching ant policy (ant_hierarch_pol.pkl) without running the pickle's code.

The file is an rlkit snapshot written by torch.save in torch's legacy (pre-1.6, non-zip) format:
five pickles (magic number, protocol version, system info, the snapshot dict, the list of storage
keys) followed by the raw bytes of each storage. The snapshot dict holds rlkit, gym and numpy
objects besides the policy's tensors, so it can never be unpickled freely.

`RestrictedUnpickler.find_class` hands back only this module's own inert objects:
- tensor rebuilders (torch._utils._rebuild_tensor_v2 / _rebuild_parameter) and storage types
  (torch.FloatStorage, ...) are replaced by functions that record a *reference* to a storage
  slice; no torch code runs while unpickling;
- collections.OrderedDict (a plain container);
- a fixed list of names known to occur in rlkit snapshots (rlkit networks and policies, torch
  Linear, activation functions, gym spaces and envs, numpy arrays and random states, ...) become
  `Opaque` placeholders: classes made here that only record their name, arguments and state.
Every other global (os.system, builtins.eval, any other class) raises UnpicklingError.
The storages' bytes are then read as plain numbers and the recorded tensor references are turned
into torch tensors.

The path of the pickle is a setting: an explicit argument (Python API), else
$ANTMAZE_POLICY_FILE, else ../shared/data/d4rl/ant_hierarch_pol.pkl (this project's shared data),
else ~/.cache/tasks/antmaze/ant_hierarch_pol.pkl.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.provenance import REPO_ROOT

POLICY_FILE_NAME = "ant_hierarch_pol.pkl"
POLICY_ENV_VAR = "ANTMAZE_POLICY_FILE"
DEFAULT_POLICY_PATHS = (
    REPO_ROOT.parent / "shared" / "data" / "d4rl" / POLICY_FILE_NAME,
    Path("~/.cache/tasks/antmaze").expanduser() / POLICY_FILE_NAME,
)
WHERE_TO_GET_IT = (
    "D4RL's goal-reaching ant policy is the file ant_hierarch_pol.pkl that D4RL's antmaze "
    "generation script takes as --policy_file (scripts/generation/generate_ant_maze_datasets.py; "
    "see the antmaze section of D4RL's README / wiki, github.com/Farama-Foundation/D4RL, which "
    "links the file). Put it at " + str(DEFAULT_POLICY_PATHS[-1]) + ", or point $" + POLICY_ENV_VAR +
    " at your copy")

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# storage type name -> numpy dtype of its elements
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}

# Globals of rlkit snapshots that become inert placeholders (never imported, never called).
OPAQUE_GLOBALS = frozenset({
    ("rlkit.torch.networks", "FlattenMlp"), ("rlkit.torch.networks", "Mlp"),
    ("rlkit.torch.networks", "identity"), ("rlkit.torch.sac.policies", "TanhGaussianPolicy"),
    ("rlkit.torch.sac.policies", "MakeDeterministic"), ("rlkit.envs.wrappers", "NormalizedBoxEnv"),
    ("torch.nn.modules.linear", "Linear"), ("torch.nn.functional", "relu"),
    ("torch.nn.functional", "tanh"), ("torch.nn.backends.thnn", "_get_thnn_function_backend"),
    ("gym.spaces.box", "Box"), ("locomotion.ant", "GoalReachingAntEnv"),
    ("d4rl.locomotion.ant", "GoalReachingAntEnv"), ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.random", "__RandomState_ctor"),
    ("_codecs", "encode"),
})


class PolicyFileNotFoundError(ValueError):
    """The policy pickle is missing (a ValueError so that the CLI prints it as an error line)."""


class Opaque:
    """Stand-in for an object of the snapshot that is not a tensor: it only records."""

    pickled_name = "?"
    args: tuple = ()
    kwargs: dict = {}
    state = None  # NEWOBJ creates instances without calling __init__

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # a placeholder function "called" by REDUCE
        return _opaque_type(self.pickled_name + "()")(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<opaque {self.pickled_name}>"

    @property
    def attributes(self) -> dict:
        """The recorded instance dict (BUILD state), {} if none."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        return state if isinstance(state, dict) else {}


_OPAQUE_TYPES: dict[str, type] = {}


def _opaque_type(name: str) -> type:
    if name not in _OPAQUE_TYPES:
        _OPAQUE_TYPES[name] = type(name.rsplit(".", 1)[-1], (Opaque,), {"pickled_name": name})
    return _OPAQUE_TYPES[name]


@dataclass(frozen=True)
class StorageType:
    name: str

    @property
    def dtype(self):
        return STORAGE_DTYPES[self.name]


@dataclass
class StorageRef:
    key: str
    dtype: type
    numel: int
    location: str


@dataclass
class TensorRef:
    storage: StorageRef
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor's storage is not a storage reference")
    return TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, TensorRef):
        raise pickle.UnpicklingError("a parameter's data is not a tensor")
    return data


SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only tensor references, plain containers and inert placeholders (see module doc)."""

    def __init__(self, file, allow_opaque: bool = True):
        super().__init__(file)
        self.allow_opaque = allow_opaque
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        if self.allow_opaque and (module, name) in OPAQUE_GLOBALS:
            return _opaque_type(f"{module}.{name}")
        raise pickle.UnpicklingError(
            f"refusing to load global '{module}.{name}': this reader of rlkit policy snapshots only "
            f"builds tensors and plain containers (the file is not the expected checkpoint, or it "
            f"tries to run code)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind = pid[0]
        if kind == "module" and len(pid) == 4 and isinstance(pid[1], type) and issubclass(pid[1], Opaque):
            return pid[1]  # torch's legacy format saves a module's class with its source: keep ours
        if kind == "storage" and len(pid) == 6 and isinstance(pid[1], StorageType):
            _, storage_type, key, location, numel, view_metadata = pid
            if view_metadata is not None:
                raise pickle.UnpicklingError("storage views are not supported")
            key = str(key)
            if key not in self.storages:
                self.storages[key] = StorageRef(key, storage_type.dtype, int(numel), str(location))
            return self.storages[key]
        raise pickle.UnpicklingError(f"unexpected persistent id of kind {kind!r}")


def _load_plain(f) -> object:
    return RestrictedUnpickler(f, allow_opaque=False).load()


def load_legacy_torch_snapshot(path: str | os.PathLike) -> object:
    """The snapshot object of a legacy torch.save file, tensors as torch tensors, every other
    object an Opaque placeholder."""
    with open(path, "rb") as f:
        if _load_plain(f) != LEGACY_MAGIC_NUMBER:
            raise pickle.UnpicklingError(f"{path} is not a legacy torch.save file (bad magic number)")
        if _load_plain(f) != LEGACY_PROTOCOL_VERSION:
            raise pickle.UnpicklingError(f"{path}: unsupported torch.save protocol version")
        sys_info = _load_plain(f)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise pickle.UnpicklingError(f"{path}: only little-endian files are supported")
        unpickler = RestrictedUnpickler(f)
        snapshot = unpickler.load()
        keys = _load_plain(f)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise pickle.UnpicklingError(f"{path}: the storage key list is malformed")
        arrays: dict[str, np.ndarray] = {}
        for key in keys:
            ref = unpickler.storages.get(key)
            if ref is None:
                raise pickle.UnpicklingError(f"{path}: storage {key} was never referenced")
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != ref.numel:
                raise pickle.UnpicklingError(f"{path}: storage {key} holds {numel} elements, expected {ref.numel}")
            raw = f.read(numel * np.dtype(ref.dtype).itemsize)
            if len(raw) != numel * np.dtype(ref.dtype).itemsize:
                raise pickle.UnpicklingError(f"{path}: the file ends inside storage {key} (truncated?)")
            arrays[key] = np.frombuffer(raw, dtype=np.dtype(ref.dtype).newbyteorder("<")).copy()
    return _materialise(snapshot, arrays, set())


def _materialise(obj, arrays: dict[str, np.ndarray], seen: set[int]):
    """Replace TensorRefs by torch tensors inside dicts, lists, tuples and placeholders' states."""
    if isinstance(obj, TensorRef):
        flat = torch.from_numpy(arrays[obj.storage.key])
        return torch.as_strided(flat, obj.size, obj.stride, obj.offset).clone()
    if id(obj) in seen:
        return obj
    if isinstance(obj, dict):
        seen.add(id(obj))
        for k in list(obj):
            obj[k] = _materialise(obj[k], arrays, seen)
    elif isinstance(obj, list):
        seen.add(id(obj))
        obj[:] = [_materialise(v, arrays, seen) for v in obj]
    elif isinstance(obj, tuple):
        return tuple(_materialise(v, arrays, seen) for v in obj)
    elif isinstance(obj, Opaque):
        seen.add(id(obj))
        obj.state = _materialise(obj.state, arrays, seen)
    return obj


# --- the goal-reaching policy -------------------------------------------------------------
def resolve_policy_file(path: str | os.PathLike | None = None) -> Path:
    """The policy pickle to use (see the module doc for the order); raises with where to get it."""
    if path:
        candidates = [Path(path).expanduser()]
    elif os.environ.get(POLICY_ENV_VAR):
        candidates = [Path(os.environ[POLICY_ENV_VAR]).expanduser()]
    else:
        candidates = list(DEFAULT_POLICY_PATHS)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PolicyFileNotFoundError(
        f"D4RL's ant policy file was not found (looked at: {', '.join(map(str, candidates))}). "
        f"{WHERE_TO_GET_IT}.")


@dataclass
class TanhGaussianWeights:
    """rlkit TanhGaussianPolicy parameters: hidden Linear layers, the mean head, the log-std head."""

    hidden: list[tuple[torch.Tensor, torch.Tensor]]
    mean: tuple[torch.Tensor, torch.Tensor]
    log_std: tuple[torch.Tensor, torch.Tensor]

    @property
    def obs_dim(self) -> int:
        return int(self.hidden[0][0].shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.mean[0].shape[0])


def pickled_name(obj) -> str | None:
    """The recorded 'module.name' of a placeholder object or placeholder class, else None."""
    if isinstance(obj, Opaque) or (isinstance(obj, type) and issubclass(obj, Opaque)):
        return obj.pickled_name
    return None


def _linear(module, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if pickled_name(module) != "torch.nn.modules.linear.Linear" or not isinstance(module, Opaque):
        raise ValueError(f"{where} is not a torch Linear layer")
    params = module.attributes.get("_parameters", {})
    weight, bias = params.get("weight"), params.get("bias")
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise ValueError(f"{where} has no weight/bias tensors")
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise ValueError(f"{where} has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}")
    return weight.float(), bias.float()


def extract_tanh_gaussian_policy(snapshot, key: str = "exploration/policy") -> TanhGaussianWeights:
    """The policy's weights, checked to be an rlkit TanhGaussianPolicy with ReLU hidden layers,
    an identity output, no layer norm and a learned (state-dependent) log-std head."""
    if not isinstance(snapshot, dict) or key not in snapshot:
        raise ValueError(f"the snapshot has no {key!r} entry")
    policy = snapshot[key]
    if pickled_name(policy) != "rlkit.torch.sac.policies.TanhGaussianPolicy" or not isinstance(policy, Opaque):
        raise ValueError(f"{key} is not an rlkit TanhGaussianPolicy ({policy!r})")
    attrs = policy.attributes
    act = attrs.get("hidden_activation")
    if pickled_name(act) != "torch.nn.functional.relu":
        raise ValueError(f"{key}: hidden activation is {act!r}, expected relu")
    out = attrs.get("output_activation")
    if pickled_name(out) != "rlkit.torch.networks.identity":
        raise ValueError(f"{key}: output activation is {out!r}, expected identity")
    if attrs.get("layer_norm"):
        raise ValueError(f"{key}: layer norm is not supported")
    if attrs.get("std") is not None:
        raise ValueError(f"{key}: a fixed std is not supported")
    modules = attrs.get("_modules", {})
    hidden = []
    while f"fc{len(hidden)}" in modules:
        hidden.append(_linear(modules[f"fc{len(hidden)}"], f"{key}.fc{len(hidden)}"))
    if not hidden:
        raise ValueError(f"{key} has no hidden layers")
    weights = TanhGaussianWeights(hidden, _linear(modules.get("last_fc"), f"{key}.last_fc"),
                                  _linear(modules.get("last_fc_log_std"), f"{key}.last_fc_log_std"))
    sizes = [weights.obs_dim] + [w.shape[0] for w, _ in hidden]
    for (w, _), n_in in zip(hidden, sizes):
        if w.shape[1] != n_in:
            raise ValueError(f"{key}: layer sizes do not chain ({sizes})")
    for head in (weights.mean, weights.log_std):
        if head[0].shape[1] != sizes[-1]:
            raise ValueError(f"{key}: output heads do not fit the last hidden layer")
    return weights


def load_goal_reaching_weights(path: str | os.PathLike | None = None) -> TanhGaussianWeights:
    """D4RL's goal-reaching ant policy weights from its rlkit pickle, read safely."""
    return extract_tanh_gaussian_policy(load_legacy_torch_snapshot(resolve_policy_file(path)))
