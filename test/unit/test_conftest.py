"""conftest: the derandomized hypothesis profile is the one CI and `make test` get; local runs explore."""

from __future__ import annotations

from conftest import hypothesis_profile
from hypothesis import settings


def test_ci_gets_the_derandomized_profile() -> None:
    assert hypothesis_profile({"CI": "true"}) == "ci"
    assert hypothesis_profile({"CI": "1"}) == "ci"
    assert settings.get_profile("ci").derandomize is True
    assert settings.get_profile("ci").database is None


def test_local_runs_explore_and_the_variable_overrides() -> None:
    assert hypothesis_profile({}) == "dev"
    assert hypothesis_profile({"CI": "false"}) == "dev"
    assert hypothesis_profile({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}) == "dev"
    assert settings.get_profile("dev").derandomize is False
