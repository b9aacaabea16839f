"""Ctrl-C (SIGINT) and SIGTERM during training: stop at the next log row with a checkpoint there.

Without this, an interrupted run resumes from its last periodic checkpoint and loses the steps
since (up to `checkpoint_every`: 5,000 worker steps, 1,000 Manager updates). Inside
`with StopOnSignal() as signal_stop:` the first SIGINT or SIGTERM only sets `signal_stop.requested`;
the training loops read it once per step and move the step this call stops at to the next multiple
of `log_every` (`next_log_row`): that step is logged and checkpointed as the end of a `--chunk-steps`
chunk is, so the resumed run equals an uninterrupted one, bit for bit. The same signal a second time
raises KeyboardInterrupt at once (the steps since the last checkpoint are lost). A different signal
after the first does not count as the second: the grid's Ctrl-C reaches a cell both from the
terminal (SIGINT) and from the grid stopping it (SIGTERM).

After such a stop the loop raises `TrainingInterrupted`, which every entry point reports as one
`error:` line naming the checkpoint (exit status 2, so `a && b` chains stop).
"""
from __future__ import annotations

import signal
import sys
import threading

from common.errors import InputError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(InputError, RuntimeError):
    """The run stopped on a signal after writing a checkpoint; the same command resumes it."""


class StopOnSignal:
    """Context manager: SIGINT / SIGTERM ask the training loop to stop at its next log row.

    Only the main thread can install signal handlers; elsewhere (a grid cell's thread in tests) it
    leaves the handlers alone and `requested` stays False. A signal the process was started ignoring
    (a non-interactive shell's background job ignores SIGINT, so that a Ctrl-C meant for the
    foreground does not reach it) stays ignored."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored stays ignored (a shell's `cmd &`, nohup)
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
        return False

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested and name == self.signal_name:
            raise KeyboardInterrupt(f"{name} twice: stopped at once")
        if not self.requested:
            self.requested, self.signal_name = True, name
            print(f"\n{name}: stopping at the next log row, with a checkpoint there; send {name} again to stop at "
                  "once (losing the steps since the last checkpoint)", file=sys.stderr, flush=True)

    def interrupted(self, where: object, step: int, total: int) -> TrainingInterrupted:
        """The error to raise once the loop has stopped and checkpointed at `step`."""
        return TrainingInterrupted(f"interrupted by {self.signal_name} at step {step}/{total}; checkpoint {where} "
                                   "written there: run the same command again to resume")


def next_log_row(step: int, log_every: int) -> int:
    """The first multiple of `log_every` after `step` (the steps done so far): where an interrupted
    loop stops, so that its last metrics row and checkpoint fall where an uninterrupted run's row does."""
    return (step // log_every + 1) * log_every
