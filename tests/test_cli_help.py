"""`--help` of every command shows every option's help in full, defaults included.

Typer renders help through rich, whose markup takes `[default: ...]` written in a help string
for a style tag and silently drops it; so help strings say "(default: ...)" and this test reads
the help as a user sees it, from the installed command.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess

import pytest
import typer.main

import cli
from conftest import TRANSCRIBE

_BOX = re.compile(r"[│╭╮╰╯─]+")


def _commands():
    def walk(cmd, path):
        yield path, cmd
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, path + [name])

    return list(walk(typer.main.get_command(cli.app), []))


def _flat(text: str) -> str:
    return " ".join(_BOX.sub(" ", text).split())


@functools.lru_cache(maxsize=None)
def _help(path: tuple[str, ...]) -> str:
    env = {**os.environ, "COLUMNS": "250", "TERMINAL_WIDTH": "250", "NO_COLOR": "1"}
    proc = subprocess.run([str(TRANSCRIBE), *path, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return _flat(proc.stdout)


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p) or "transcribe")
def test_help_shows_every_option_help_in_full(path):
    cmd = dict((tuple(p), c) for p, c in _commands())[tuple(path)]
    shown = _help(tuple(path))
    for param in cmd.params:
        text = getattr(param, "help", None)
        if not text:
            continue
        assert "[default:" not in text, f"{param.name}: rich eats [default: ...]; write (default: ...)"
        assert _flat(text) in shown, f"`transcribe {' '.join(path)} --help` lost part of the help of {param.name}: {text!r}"


def test_help_shows_the_defaults():
    run = _help(("run",))
    for text in ("(default: beside each input)", "(default: detected,", "(default: int8 on CPU, float16 on CUDA)",
                 "(default: all cores)", "[default: base]", "[default: vtt,srt,json,rttm,md]"):
        assert text in run, text
    assert "(default: the default set)" in _help(("models", "pull"))
    assert "(default: all pulled)" in _help(("models", "verify"))
    stream = _help(("stream",))
    for text in ("[default: tiny.en]", "[default: none]", "[default: vtt,json,md]", "(default: int8 on CPU, float16 on CUDA)",
                 "(default: for network URLs)", "[default: 0.5]", "[default: 0.4]", "ws://[HOST:]PORT/ingest"):
        assert text in stream, text


def test_stream_speaker_threshold_default_is_the_library_default():
    # The CLI repeats the default as a literal (it imports only typer at load): keep them one.
    import inspect

    from transcribe.streaming.cli import stream
    from transcribe.streaming.session import StreamOptions
    from transcribe.streaming.speakers import SpeakerOptions

    option = inspect.signature(stream).parameters["speaker_threshold"].default
    assert option.default == StreamOptions().speaker_threshold == SpeakerOptions().threshold
