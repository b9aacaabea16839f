"""The one marker for errors caused by the user's input, so that every entry point reports them alike.

An error whose message names the problem and its fix (an unknown env name, a missing or corrupt
dataset, a checkpoint for another env, a finished run, a diverged loss, a bad setting) derives from
`InputError` besides its usual built-in base; entry points catch `INPUT_ERRORS` and print one
`error: ...` line with exit status 2 instead of a traceback. A new such error only needs the base
class: no entry point keeps its own list.
"""
from __future__ import annotations

import sys


class InputError(Exception):
    """Base of the errors whose message is meant for the user (see the module's docstring)."""


# ValueError: a bad setting (config validation raises it with the fix in the message)
INPUT_ERRORS: tuple[type[BaseException], ...] = (InputError, ValueError)


def report_input_error(exc: BaseException) -> int:
    """Print `error: <message>` on stderr; returns the entry points' exit status for bad input, 2."""
    print(f"error: {exc}", file=sys.stderr)
    return 2
