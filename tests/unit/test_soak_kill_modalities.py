"""`bench soak --kill-modalities`: which groups' replicas the soak kills, checked at parse."""

from __future__ import annotations

import pytest

from bench.cli import parser


def soak_args(*extra: str):
    return parser().parse_args(["soak", "--url", "http://127.0.0.1:8000", *extra])


def test_by_default_every_group_is_killed_in_turn():
    assert soak_args().kill_modalities == ("text", "vision", "audio")


def test_a_list_names_the_groups_killed_in_that_order():
    assert soak_args("--kill-modalities", "text").kill_modalities == ("text",)
    assert soak_args("--kill-modalities", "audio, text").kill_modalities == ("audio", "text")


@pytest.mark.parametrize("value", ["", "txt", "text,video"])
def test_an_unknown_or_empty_list_is_refused(value, capsys):
    with pytest.raises(SystemExit):
        soak_args("--kill-modalities", value)
    assert "expected some of text, vision, audio" in capsys.readouterr().err
