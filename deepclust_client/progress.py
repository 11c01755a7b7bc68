"""A terminal progress bar over a job's progress records (tqdm): phase, step/total, the latest
loss, elapsed time and ETA. One bar per phase, left on screen when the next phase starts."""

from __future__ import annotations

import sys
import time
from typing import IO


def latest_loss(record: dict) -> float | None:
    """The record's total loss, or its first loss term when it has no total."""
    losses = record.get("losses") or {}
    value = losses.get("total", next(iter(losses.values()), None))
    return value if isinstance(value, (int, float)) else None


class ProgressBar:
    REFRESH_S = 0.1  # a stream replaying its history must not print one line per record

    def __init__(self, file: IO[str] | None = None):
        self.file = file or sys.stderr
        self.bar = None
        self._phase: str | None = None
        self._phase_started_s = 0.0  # the job's elapsed_s when the phase began
        self._last_elapsed_s = (
            0.0  # of the previous record: a phase begins when the one before ends
        )
        self._shown = 0.0

    def update(self, record: dict) -> None:
        from tqdm import tqdm  # the client needs only httpx; a bar is optional

        phase, step, total = (
            record.get("phase", "?"),
            int(record.get("step", 0)),
            int(record.get("total", 0)),
        )
        elapsed_s = record.get("elapsed_s")
        new_phase = self.bar is None or phase != self._phase or (total or None) != self.bar.total
        if new_phase:
            self.close()
            # smoothing=0: the ETA is the phase's average rate, not the rate records arrive at
            self.bar = tqdm(
                total=total or None,
                desc=phase,
                file=self.file,
                unit="step",
                smoothing=0,
                dynamic_ncols=True,
                leave=True,
            )
            self._phase, self._phase_started_s = phase, self._last_elapsed_s
        if elapsed_s is not None:
            # Time the bar by the job's own clock, so a replayed history gives a true rate and ETA.
            self.bar.start_t = self.bar._time() - max(elapsed_s - self._phase_started_s, 0.0)
            self._last_elapsed_s = elapsed_s
        self.bar.n = step
        postfix = {}
        loss = latest_loss(record)
        if loss is not None:
            postfix["loss"] = f"{loss:.4g}"
        if "acc" in (record.get("metrics") or {}):
            postfix["acc"] = f"{record['metrics']['acc']:.3f}"
        self.bar.set_postfix(postfix, refresh=False)
        if new_phase or time.monotonic() - self._shown >= self.REFRESH_S:
            self.bar.refresh()
            self._shown = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()  # prints the last state
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
