"""Stopping a run early on request, with a checkpoint, so that a requeued job resumes where it stopped.

SLURM warns a job before its time limit with the signal of `--signal=USR2@90` (90 s ahead) and sends SIGTERM when it
ends or preempts a job. main.py trains under a `StopHandler` for SIGUSR2 and SIGTERM (before, while it generates or
downloads data, the signals end it at once: there is nothing to checkpoint yet). The handler only records the
request; the training loop (`training.runner`) sees it at the next call boundary, finishes that boundary's work (log,
evaluation, checkpoint, as scheduled, so that the resumed run's logs are the uninterrupted run's), saves a checkpoint
there if the schedule did not, and raises `StopRequested`. main.py then exits with `EXIT_STATUS`, writing
no final.json and no summary; `main.py ... --resume` continues from the checkpoint, bitwise as if never stopped.

Standard library only: the sweep's launchers read `EXIT_STATUS` without importing JAX.
"""

import signal
from types import FrameType
from typing import Any

EXIT_STATUS = 3  # main.py's exit status after a requested stop: checkpointed, rerun with --resume (errors exit 1)
SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class StopRequested(Exception):
    """Training stopped at a call boundary on a signal, after checkpointing that step."""

    def __init__(self, task: str, step: int, signal_name: str, checkpoint: str):
        super().__init__(f'{task}: stopped at step {step} on {signal_name}, checkpoint {checkpoint}; rerun the same '
                         'command with --resume to continue')
        self.task, self.step, self.signal_name, self.checkpoint = task, step, signal_name, checkpoint


class StopHandler:
    """While entered (`with StopHandler() as stop:`), SIGUSR2 and SIGTERM are recorded instead of ending the process;
    `requested` names the first one received (None until one is). A second signal changes nothing: the run stops at
    the same boundary. On exit the previous handlers come back.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> 'StopHandler':
        for signal_number in SIGNALS:
            self._previous[signal_number] = signal.signal(signal_number, self._record)
        return self

    def __exit__(self, *_exception: object) -> None:
        for signal_number, handler in self._previous.items():
            signal.signal(signal_number, handler)

    def _record(self, signal_number: int, _frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signal_number).name
