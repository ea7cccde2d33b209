"""The ONNX conformance tally (test_onnx_conformance.py) in the terminal summary of a run that included it."""

from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter) -> None:
    # Only when the conformance module ran: importing its helper here would cost every run.
    helper = sys.modules.get(f"{__package__}._onnx_conformance")
    line = helper.summary() if helper else ""
    if line:
        terminalreporter.write_sep("-", "ONNX node conformance")
        terminalreporter.write_line(line)
