"""The one marker for errors caused by the user's input, so that every entry point reports them alike.

An error whose message names the problem and its fix (an unknown env name, a missing or corrupt
dataset, a checkpoint for another env, a finished run, a diverged loss, a bad setting) derives from
`InputError` besides its usual built-in base; entry points catch `INPUT_ERRORS` and print one
`error: ...` line with exit status 2 instead of a traceback. A new such error only needs the base
class: no entry point keeps its own list.
"""
from __future__ import annotations

import errno
import os
import shutil
import sys


class InputError(Exception):
    """Base of the errors whose message is meant for the user (see the module's docstring)."""


class DiskFull(InputError, OSError):
    """A file could not be written because its device is full (or the user's quota is used up)."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28] " before it
        return str(self.strerror)


# Below this much free space a failed write is taken for a full disk even when the library that
# wrote (torch.save, h5py) reports it without errno ENOSPC.
NEARLY_FULL_BYTES = 64 * 2**20


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free space of the device holding `folder`, or None where it cannot be read."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, folder: str | os.PathLike) -> bool:
    """Whether `exc`, raised while writing into `folder`, comes from a full device or quota."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    free = free_bytes(folder)
    return isinstance(exc, (OSError, RuntimeError)) and free is not None and free < NEARLY_FULL_BYTES


def disk_full(path: str | os.PathLike, what_stays: str) -> DiskFull:
    """The error for a write into `path` that a full device stopped; `what_stays` says what is intact."""
    folder = os.path.dirname(os.path.abspath(path))
    free = free_bytes(folder)
    free_text = "" if free is None else f" ({free / 2**20:.0f} MiB free)"
    return DiskFull(errno.ENOSPC, f"no space left on the device of {folder}{free_text} while writing "
                    f"{os.path.basename(path)}; {what_stays}. Free some space (old runs' checkpoint.pt and "
                    "snapshots/, datasets you no longer use) and run the same command again: a training run "
                    "resumes from its last checkpoint")


# ValueError: a bad setting (config validation raises it with the fix in the message)
INPUT_ERRORS: tuple[type[BaseException], ...] = (InputError, ValueError)


def report_input_error(exc: BaseException) -> int:
    """Print `error: <message>` on stderr; returns the entry points' exit status for bad input, 2."""
    print(f"error: {exc}", file=sys.stderr)
    return 2
