"""Keeping TensorFlow's native start-up notices out of the commands' output.

TensorFlow's C++ side writes straight to file descriptor 2 while it loads, before its own log
level applies ("All log messages before absl::InitializeLog() ...", oneDNN and CUDA-stub
notices, "failed call to cuInit" on machines without a GPU), so neither
``TF_CPP_MIN_LOG_LEVEL`` nor Python's logging can silence it. The entry points (``grasp-success``
and the node's ``main``) run inside :func:`native_notices_filtered`, which passes every other
line through unchanged; library code never calls it.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Lines of TensorFlow's loader that say nothing to a user of this package.
NOTICES = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWE]\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|"
    rb"cuda_executor|cuda_diagnostics|cuda_dnn|cuda_fft|cuda_blas|gpu_device)\.cc:\d+\] "
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)
_JOIN_S = 2.0


def is_notice(line: bytes) -> bool:
    """True for a native start-up notice that the commands keep to themselves."""
    return NOTICES.match(line) is not None


def _pump(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb") as source:
        for line in source:
            if not is_notice(line):
                os.write(out_fd, line)


@contextmanager
def native_notices_filtered() -> Iterator[None]:
    """Route fd 2 through a filter that drops start-up notices, for the life of a command."""
    sys.stderr.flush()
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, original), daemon=True,
                            name="native-notices")
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writer closes: the pump drains and stops
        pump.join(_JOIN_S)
        if not pump.is_alive():  # else a child process still writes through it: leave it
            os.close(original)
