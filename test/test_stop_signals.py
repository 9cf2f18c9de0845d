"""The one clean-stop rule (common/stop_signals.py) with real signals sent to this process."""

import os
import signal

import pytest

from depth_annotation.common import SIGINT_EXIT, SIGTERM_EXIT, Stopped, StopSignals


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # delivered to the main thread before kill() returns to Python code


def test_a_node_is_interrupted_once_a_repeat_is_only_noted_and_sigterm_decides_the_exit_code(capfd):
    assert (SIGINT_EXIT, SIGTERM_EXIT) == (130, 143)
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert stop.exit_code() == 0 and not stop.requested
        assert stop.name == "SIGINT" and stop.interrupted_exit_code() == 130  # a KeyboardInterrupt no handler saw
        with pytest.raises(Stopped):
            send(signal.SIGINT)
        assert stop.requested and stop.flag.is_set() and stop.name == "SIGINT"
        assert stop.exit_code() == 0 and stop.interrupted_exit_code() == 130
        send(signal.SIGTERM)  # while finalising: noted, never a second interrupt
        assert stop.name == "SIGINT" and stop.terminated
        assert stop.exit_code() == 143 and stop.interrupted_exit_code() == 143
    assert "SIGTERM again: still shutting down" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers it replaced are back


def test_a_command_is_interrupted_again_unless_deferred():
    with StopSignals(interrupt_again=True) as stop:
        with pytest.raises(Stopped):
            send(signal.SIGTERM)
        with pytest.raises(Stopped):  # the first one swallowed somewhere: the second still stops it
            send(signal.SIGINT)
        with stop.deferred():
            send(signal.SIGINT)  # moving finished files into place: recorded only
        assert stop.caught == [signal.SIGTERM, signal.SIGINT, signal.SIGINT] and stop.name == "SIGTERM"
        assert stop.interrupted_exit_code() == 143


def test_deferred_and_polling_modes_record_without_raising():
    with StopSignals() as stop:
        with stop.deferred():
            send(signal.SIGTERM)
        assert stop.flag.is_set() and stop.caught == [signal.SIGTERM]
    with StopSignals(interrupt=False) as polled:
        send(signal.SIGINT)
        assert polled.requested and polled.exit_code() == 0
