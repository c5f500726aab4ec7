"""Fixtures shared by unit tests of several packages, the hypothesis profiles, and the test helpers' path.

Hypothesis profiles (chosen here, before any test module is imported, so every `@settings` inherits them):
- "ci": derandomized (the same examples every run, no example database), so a submission cannot fail by chance;
  used when CI is set (CI=true, as CI services do) and by `make test` / tools/run_tests.sh.
- "dev": random exploration with the local example database, for runs on a workstation (the default otherwise).
HYPOTHESIS_PROFILE=<name> overrides both. A failing case that exploration finds becomes a regression test: add it
with `@example(...)` on the property (or a plain test), so the derandomized CI run checks it from then on.

Helper modules (engine_testlib, sched_toys, fake_ros_master, records_testlib) live next to the tests that use
them; their folders are put on sys.path so a test in another folder imports them by name too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from intradp_ros.core import capture

for _folder in sorted(p for p in Path(__file__).parent.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", derandomize=False, deadline=None)


def hypothesis_profile(env: os._Environ[str] | dict[str, str]) -> str:
    """The profile for this environment: HYPOTHESIS_PROFILE, else "ci" under CI, else "dev"."""
    if env.get("HYPOTHESIS_PROFILE"):
        return env["HYPOTHESIS_PROFILE"]
    return "ci" if env.get("CI", "").strip().lower() in ("1", "true", "yes") else "dev"


settings.load_profile(hypothesis_profile(os.environ))


class TwoConvNet(torch.nn.Module):
    """uint8 image -> two 3x3 convolutions: the smallest graph whose split plans exchange halo rows."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x.float() / 255)))


@pytest.fixture(scope="module")
def graph_and_input():
    """(model, captured graph, 1x3x32x32 uint8 input) of TwoConvNet."""
    torch.manual_seed(0)
    m = TwoConvNet().eval()
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    return m, capture(m, x), x
