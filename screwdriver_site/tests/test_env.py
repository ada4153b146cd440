"""The typed readers of settings from the environment."""

from __future__ import annotations

import pytest

from screwdriver_site.env import env_pairs


def test_pairs_are_read_as_a_mapping_and_a_malformed_one_says_what_to_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SD_X", " team-b = xoxb-1 ,team-c=xoxb-2,")
    assert env_pairs("SD_X") == {"team-b": "xoxb-1", "team-c": "xoxb-2"}
    monkeypatch.delenv("SD_X")
    assert env_pairs("SD_X") == {}
    monkeypatch.setenv("SD_X", "team-b")
    with pytest.raises(ValueError, match="SD_X must list name=value pairs"):
        env_pairs("SD_X")
