"""supernet.common.cli: interrupts that a library would report as its own failure."""

from __future__ import annotations

import os
import signal
import time

import pytest

from supernet.common.cli import Terminated, handle_sigterm, interrupts_kept


def _library_that_swallows_an_interrupt(signum: int) -> None:
    """As torch.onnx.export did: the interrupt struck a lazy import, which it left half done;
    what the caller then sees is an AttributeError of the half-imported module."""
    try:
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises in here
    except KeyboardInterrupt:
        pass
    raise AttributeError("module 'torch._dynamo' has no attribute 'exc'")


@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_an_interrupt_inside_the_body_stays_one(signum: int, raised: type[BaseException]) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a command's process
    handle_sigterm()
    try:
        with pytest.raises(AttributeError):  # without it, the library's error
            _library_that_swallows_an_interrupt(signum)
        with pytest.raises(raised) as caught, interrupts_kept():
            _library_that_swallows_an_interrupt(signum)
        assert type(caught.value) is raised
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_an_error_without_an_interrupt_is_left_alone() -> None:
    with pytest.raises(ValueError, match="bad"), interrupts_kept():
        raise ValueError("bad")
