"""Progress bars (tqdm on stderr) for the long steps a user waits on: profiling, plan-book solves, evaluation runs.

`ProgressBar(desc)` is a `progress(done, total, *_)` callback as the profiler and the plan-table solver take it;
the bar appears on the first call (nothing is shown for a step that came from a cache) and is closed by `close()`
or the `with` block. tqdm redraws at most every `mininterval` seconds, so a bar in a ROS log file stays small.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar:
    """A lazily opened tqdm bar driven by (done, total) callbacks."""

    def __init__(self, desc: str, unit: str = "step", mininterval: float = 1.0, file: Any = None) -> None:
        self.desc = desc
        self.unit = unit
        self.mininterval = mininterval
        self.file = file if file is not None else sys.stderr
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int, *_info: Any) -> None:
        if self.bar is None:
            self.bar = tqdm(
                total=total, desc=self.desc, unit=self.unit, file=self.file, mininterval=self.mininterval, leave=True
            )
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(max(0, done - self.bar.n))

    @property
    def done(self) -> int:
        return 0 if self.bar is None else int(self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()
