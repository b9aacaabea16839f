"""common/interrupt.py: the first SIGINT / SIGTERM asks the loop to stop at its next log row, the same
signal again stops at once; handlers are restored afterwards. Real signals, sent to this process."""
import os
import signal
import threading

import pytest

from common.interrupt import StopOnSignal, TrainingInterrupted, next_log_row

def test_next_log_row_is_strictly_after_the_steps_done():
    assert [next_log_row(step, 50) for step in (0, 1, 49, 50, 51, 130)] == [50, 50, 50, 100, 100, 150]


def test_first_signal_asks_the_same_signal_twice_stops_and_handlers_come_back(signals_as_at_a_terminal, capsys):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopOnSignal() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal_name == "SIGINT"
        assert "stopping at the next log row" in capsys.readouterr().err
        os.kill(os.getpid(), signal.SIGTERM)  # the grid stopping a cell the terminal's Ctrl-C reached too
        assert stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt, match="SIGINT twice"):
            os.kill(os.getpid(), signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    error = stop.interrupted("run/checkpoint.pt", 150, 200)
    assert isinstance(error, TrainingInterrupted) and str(error).startswith("interrupted by SIGINT at step 150/200")


def test_an_ignored_signal_stays_ignored(signals_as_at_a_terminal):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's background job starts
    with StopOnSignal() as stop:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        os.kill(os.getpid(), signal.SIGINT)
        assert not stop.requested
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_outside_the_main_thread_it_installs_nothing():
    seen = {}

    def body():
        with StopOnSignal() as stop:
            seen["installed"], seen["requested"] = dict(stop._previous), stop.requested

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == {"installed": {}, "requested": False}
