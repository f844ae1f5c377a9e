"""Fixtures shared by several test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one thread is fastest and immune to other jobs on the machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Count the hostile-input and fault cases (tests marked `fault`) in the summary."""
    reports = [
        report
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "call") == "call" and "fault" in report.keywords
    ]
    if reports:
        failed = sum(report.failed for report in reports)
        terminalreporter.write_line(
            f"fault matrix: {len(reports)} hostile-input and fault cases run, {failed} failed"
        )
