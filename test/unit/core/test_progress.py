"""ProgressBar: nothing shown until the first callback, then a bar that follows (done, total)."""

from __future__ import annotations

import io

from intradp_ros.core.progress import ProgressBar


def test_bar_appears_on_first_callback_and_follows_progress() -> None:
    out = io.StringIO()
    with ProgressBar("profile", unit="node", mininterval=0, file=out) as bar:
        assert out.getvalue() == "" and bar.done == 0  # a cached step shows nothing
        bar(3, 10)
        bar(10, 10, "extra info is ignored")
        assert bar.done == 10
    text = out.getvalue()
    assert "profile" in text and "10/10" in text
