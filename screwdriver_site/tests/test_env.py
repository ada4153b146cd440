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


def test_a_malformed_pair_is_named_by_its_place_never_by_the_token_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A `:` for the `=` is an easy slip; the error goes to the server's log at start.
    monkeypatch.setenv("SD_X", "team-a=xoxb-1,team-b:xoxb-secret-2")
    with pytest.raises(ValueError, match="entry 2 is not one") as raised:
        env_pairs("SD_X")
    assert "xoxb" not in str(raised.value)
