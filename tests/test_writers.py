"""Output formats and output files, on hand-made transcripts with known answers."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import ClassVar

import pytest
import webvtt

from transcribe.attribution import assign_speakers, build_segments
from transcribe.errors import InputError, OutputError, UsageError
from transcribe.types import ModelInfo, Segment, Transcript, Turn, Word
from transcribe.writers import (
    WRITERS,
    Cue,
    JsonWriter,
    MinutesWriter,
    RttmWriter,
    SrtWriter,
    TxtWriter,
    VttWriter,
    Writer,
    iter_cues,
    output_paths,
    parse_formats,
    transcript_from_json,
    transcript_to_json,
    write_outputs,
)

LOREM = (
    "so the first item on the agenda is the budget for next year and I think we should "
    "start with the numbers that Sheila sent round last week because they changed quite a lot "
    "since the previous draft"
).split()


def _words(texts, start, step=0.35, speaker=None):
    out, t = [], start
    for text in texts:
        out.append(Word(round(t, 3), round(t + step * 0.9, 3), " " + text, 0.9, speaker))
        t += step
    return out


def meeting() -> Transcript:
    """Diane talks long, Sheila interrupts with a question, Diane answers; one word with <&>."""
    words = (
        _words(["Hello", "everyone."], 0.0)
        + _words(LOREM[:30], 1.0)
        + _words([w.rstrip(".") for w in LOREM[30:]] + ["done."], 11.5)
        + _words(["Is", "that", "R&D", "<or>", "sales?"], 16.0)
        + _words(["Both", "of", "them,", "mostly."], 18.0)
    )
    turns = (
        Turn(0.0, 15.9, "SPEAKER_00"),
        Turn(15.9, 17.9, "SPEAKER_01"),
        Turn(17.9, 19.6, "SPEAKER_00"),
        Turn(19.0, 19.4, "SPEAKER_01"),  # overlap: a murmur over Diane
    )
    attributed = assign_speakers(words, turns)
    renamed = {"SPEAKER_00": "Diane", "SPEAKER_01": "Sheila"}
    attributed = tuple(
        Word(w.start, w.end, w.text, w.probability, renamed[w.speaker]) for w in attributed
    )
    turns = tuple(Turn(t.start, t.end, renamed[t.speaker]) for t in turns)
    return Transcript(
        source="/nonexistent/meeting room.wav",
        duration=20.0,
        language="en",
        segments=build_segments(attributed),
        turns=turns,
        models=(ModelInfo("asr", "large-v3", "ab" * 32), ModelInfo("segmentation", "seg-3.0")),
        options={"model": "large-v3", "date": "2024-05-01", "max_speakers": None},
        stats={"realtime_factor": 0.12},
    )


def silence() -> Transcript:
    return Transcript(source="quiet.wav", duration=30.0, language=None, segments=())


def asr_only() -> Transcript:
    words = _words(["Just", "words", "here."], 0.0) + _words(["And", "more."], 5.0)
    return Transcript("talk.wav", 7.0, "en", build_segments(words))


def render(writer: Writer, transcript: Transcript) -> str:
    buf = io.StringIO()
    writer.write(transcript, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- registry


def test_registry_has_every_format():
    assert set(WRITERS) == {"vtt", "srt", "txt", "rttm", "json", "md"}
    for name, cls in WRITERS.items():
        assert cls.name == name and cls.extension


def test_parse_formats():
    assert parse_formats("vtt,md") == ("vtt", "md")
    assert parse_formats(" VTT , srt,vtt,") == ("vtt", "srt")
    with pytest.raises(UsageError, match=r"^unknown output format 'docx': choose from json, md, rttm, srt, txt, vtt$"):
        parse_formats("vtt,docx")
    with pytest.raises(UsageError, match=r"^no output format given"):
        parse_formats(" , ")


# --------------------------------------------------------------------------- cues


def test_cues_respect_limits_and_never_mix_speakers():
    cues = list(iter_cues(meeting().segments))
    assert cues
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines), cue
        assert cue.end - cue.start <= 7.0 + 1e-9
        assert cue.speaker in {"Diane", "Sheila"}
    # the words, in order, are all there
    text = " ".join(" ".join(c.lines) for c in cues)
    assert text == " ".join(s.text for s in meeting().segments)
    # a sentence end closes a cue
    assert cues[0].lines == ("Hello everyone.",)


def test_cue_never_spans_speaker_change_within_a_segment():
    words = (Word(0, 0.5, " a", speaker="A"), Word(0.5, 1, " b", speaker="B"))
    seg = Segment(0, 1, "a b", "A", words)
    cues = list(iter_cues([seg]))
    assert [(c.speaker, c.lines) for c in cues] == [("A", ("a",)), ("B", ("b",))]


def test_long_word_stays_whole():
    word = "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"
    words = _words(["the", word, "is", "long"], 0.0, speaker="A")
    cues = list(iter_cues(build_segments(words)))
    lines = [line for c in cues for line in c.lines]
    assert lines == ["the", word, "is long"]
    assert all(len(c.lines) <= 2 for c in cues)


def test_two_lines_are_balanced():
    words = _words(LOREM[:12], 0.0, step=0.3, speaker="A")
    (cue, *_rest) = iter_cues(build_segments(words))
    assert len(cue.lines) == 2
    a, b = (len(line) for line in cue.lines)
    assert abs(a - b) <= 10


def test_cues_from_segments_without_words():
    seg = Segment(0.0, 4.0, "We have no word timestamps at all here.", "A")
    cues = list(iter_cues([seg]))
    assert cues[0].start == 0.0 and cues[-1].end == pytest.approx(4.0)
    assert " ".join(" ".join(c.lines) for c in cues) == seg.text


def test_cjk_counts_double_width():
    words = [Word(i * 0.2, i * 0.2 + 0.2, "会议", speaker="A") for i in range(20)]
    (cue, *_rest) = iter_cues(build_segments(words))
    assert all(len(line) <= 21 for line in cue.lines)
    assert " " not in cue.text


# --------------------------------------------------------------------------- vtt


def test_vtt_parses_with_webvtt_py_and_has_voice_spans():
    text = render(VttWriter(), meeting())
    vtt = webvtt.from_string(text)
    assert len(vtt) == len(list(iter_cues(meeting().segments)))
    voices = [c.voice for c in vtt]
    assert voices[0] == "Diane" and "Sheila" in voices
    assert set(voices) == {"Diane", "Sheila"}
    for c in vtt:
        lines = c.text.split("\n")
        assert len(lines) <= 2
        assert all(len(line) <= 42 + len("&amp;&lt;&gt;") for line in lines)
        assert c.end_time.in_milliseconds() - c.start_time.in_milliseconds() <= 7000
        # one voice per cue
        assert len(re.findall(r"<v ", c.raw_text)) == 1
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert "<v Diane>Hello everyone.</v>" in text
    # escaping
    assert "R&amp;D &lt;or&gt; sales?" in text
    assert "<or>" not in text


def test_vtt_multiline_voice_span_and_timing_from_words():
    text = render(VttWriter(), meeting())
    vtt = webvtt.from_string(text)
    two = [c for c in vtt if "\n" in c.raw_text]
    assert two, "expected some two-line cues"
    assert two[0].raw_text.startswith("<v Diane>") and two[0].raw_text.endswith("</v>")
    first_word = meeting().segments[1].words[0]
    assert vtt[1].start_time.in_milliseconds() == round(first_word.start * 1000)


def test_vtt_without_speakers_has_no_voice_span():
    text = render(VttWriter(), asr_only())
    assert "<v" not in text
    vtt = webvtt.from_string(text)
    assert [c.text for c in vtt] == ["Just words here.", "And more."]


def test_vtt_silence_is_just_the_header():
    text = render(VttWriter(), silence())
    assert text == "WEBVTT\n"
    assert len(webvtt.from_string(text)) == 0


# --------------------------------------------------------------------------- srt

SRT_BLOCK = re.compile(
    r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n((?:.+\n){1,2})\n"
)


def test_srt_format():
    text = render(SrtWriter(), meeting())
    blocks = SRT_BLOCK.findall(text)
    assert "".join(m.group(0) for m in SRT_BLOCK.finditer(text)) == text
    assert [int(b[0]) for b in blocks] == list(range(1, len(blocks) + 1))
    assert blocks[0][1:] == ("00:00:00,000", "00:00:00,665", "Diane: Hello everyone.\n")
    assert any(b[3].startswith("Sheila: Is that R&D <or> sales?") for b in blocks)
    # the same cues as the VTT
    vtt = webvtt.from_string(render(VttWriter(), meeting()))
    assert [(b[1], b[2]) for b in blocks] == [
        (c.start.replace(".", ","), c.end.replace(".", ",")) for c in vtt
    ]


def test_srt_parses_with_webvtt_py(tmp_path):
    path = tmp_path / "m.srt"
    path.write_text(render(SrtWriter(), meeting()), encoding="utf-8")
    captions = webvtt.from_srt(str(path))
    assert captions[0].text == "Diane: Hello everyone."


def test_srt_and_txt_silence_are_empty():
    assert render(SrtWriter(), silence()) == ""
    assert render(TxtWriter(), silence()) == ""
    assert render(RttmWriter(), silence()) == ""


# --------------------------------------------------------------------------- txt


def test_txt_one_line_per_speaker_paragraph():
    lines = render(TxtWriter(), meeting()).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["Diane", "Sheila", "Diane"]
    assert lines[0].startswith("Diane: Hello everyone. so the first item")
    assert lines[1] == "Sheila: Is that R&D <or> sales?"


def test_txt_without_speakers_is_just_text():
    assert render(TxtWriter(), asr_only()) == "Just words here.\nAnd more.\n"


# --------------------------------------------------------------------------- rttm


def test_rttm_lines_parse():
    text = render(RttmWriter(), meeting())
    lines = text.splitlines()
    assert len(lines) == 4
    for line in lines:
        f = line.split(" ")
        assert len(f) == 10
        assert f[0] == "SPEAKER" and f[1] == "meeting_room" and f[2] == "1"
        assert float(f[3]) >= 0 and float(f[4]) > 0
        assert f[5] == f[6] == f[8] == f[9] == "<NA>"
    assert lines[0] == "SPEAKER meeting_room 1 0.000 15.900 <NA> <NA> Diane <NA> <NA>"
    assert lines[3] == "SPEAKER meeting_room 1 19.000 0.400 <NA> <NA> Sheila <NA> <NA>"


def test_rttm_speaker_whitespace_becomes_underscore():
    t = Transcript("a.wav", 2.0, "en", (), (Turn(0.0, 1.0, "Mary Ann"),))
    assert render(RttmWriter(), t) == "SPEAKER a 1 0.000 1.000 <NA> <NA> Mary_Ann <NA> <NA>\n"


# --------------------------------------------------------------------------- json


def test_json_round_trip():
    t = meeting()
    text = render(JsonWriter(), t)
    data = json.loads(text)
    assert data["version"] == 1
    assert set(data) == {
        "version", "source", "language", "duration", "speakers", "segments", "turns",
        "models", "options", "stats",
    }
    assert transcript_from_json(data) == t


def test_json_content():
    data = json.loads(render(JsonWriter(), meeting()))
    assert [s["name"] for s in data["speakers"]] == ["Diane", "Sheila"]
    assert sum(s["share"] for s in data["speakers"]) == pytest.approx(1.0, abs=1e-3)
    assert data["speakers"][1]["speaking_time"] == pytest.approx(2.4)
    seg = data["segments"][0]
    assert set(seg) == {"start", "end", "speaker", "text", "words"}
    assert set(seg["words"][0]) == {"start", "end", "word", "probability", "speaker"}
    assert data["models"][0] == {"role": "asr", "name": "large-v3", "sha256": "ab" * 32}
    assert data["options"]["max_speakers"] is None


def test_json_rounds_times_to_milliseconds_and_keeps_unicode():
    w = Word(0.123456, 0.98765, " Grüße, 会议", 0.912345, "Zoë")
    t = Transcript("ü.wav", 1.0004, "de", (Segment(0.123456, 0.98765, "Grüße, 会议", "Zoë", (w,)),))
    text = render(JsonWriter(), t)
    assert "Grüße, 会议" in text and "\\u" not in text
    data = json.loads(text)
    assert data["segments"][0]["words"][0]["start"] == 0.123
    assert data["segments"][0]["end"] == 0.988
    assert data["duration"] == 1.0


def test_json_options_with_paths_and_dataclasses():
    t = Transcript("a.wav", 1.0, None, (), options={"out": Path("/x/y"), "model": ModelInfo("asr", "m")})
    data = json.loads(render(JsonWriter(), t))
    assert data["options"] == {"out": "/x/y", "model": {"role": "asr", "name": "m", "sha256": None}}


def test_json_silence():
    data = json.loads(render(JsonWriter(), silence()))
    assert data["segments"] == [] and data["speakers"] == [] and data["turns"] == []
    assert transcript_from_json(data) == silence()


def test_transcript_from_json_rejects_other_documents():
    with pytest.raises(InputError, match="not a transcript"):
        transcript_from_json({"text": "hi"})
    with pytest.raises(InputError, match="version 2 is not supported"):
        transcript_from_json({"version": 2, "segments": []})
    with pytest.raises(InputError, match="malformed"):
        transcript_from_json({"version": 1, "segments": [{"start": 0}]})


def test_to_json_matches_writer():
    t = meeting()
    assert json.loads(render(JsonWriter(), t)) == transcript_to_json(t)


# --------------------------------------------------------------------------- minutes


def test_minutes_content():
    md = render(MinutesWriter(), meeting())
    assert md.startswith("# Minutes — meeting room\n")
    assert "- **Date:** 2024-05-01" in md
    assert "- **Duration:** 0:00:20" in md
    assert "- **Language:** en" in md
    rows = re.findall(r"^\| (\w+) \| (\d+:\d\d:\d\d) \| ([\d.]+) % \|$", md, re.M)
    assert [r[0] for r in rows] == ["Diane", "Sheila"]
    assert sum(float(r[2]) for r in rows) == pytest.approx(100.0, abs=0.05)
    paras = re.findall(r"^\*\*\[(\d\d:\d\d:\d\d)\] (\w+):\*\* (.+)$", md, re.M)
    assert [(p[0], p[1]) for p in paras] == [
        ("00:00:00", "Diane"),
        ("00:00:16", "Sheila"),
        ("00:00:18", "Diane"),
    ]
    assert paras[0][2].startswith("Hello everyone. so the first item")
    assert paras[1][2] == r"Is that R&D \<or\> sales?"


def test_minutes_date_from_file_mtime(tmp_path):
    src = tmp_path / "board.wav"
    src.write_bytes(b"")
    os.utime(src, (1_700_000_000, 1_700_000_000))  # 2023-11-14/15 depending on zone
    t = Transcript(str(src), 1.0, "en", ())
    md = render(MinutesWriter(), t)
    import datetime as dt

    assert f"- **Date:** {dt.date.fromtimestamp(1_700_000_000).isoformat()}" in md
    assert md.startswith("# Minutes — board\n")


def test_minutes_silence_says_no_speech():
    md = render(MinutesWriter(), silence())
    assert "No speech was detected." in md
    assert "- **Duration:** 0:00:30" in md
    assert "- **Language:** unknown" in md


def test_minutes_without_speakers():
    md = render(MinutesWriter(), asr_only())
    assert "Speakers were not identified" in md
    assert "**[00:00:00]** Just words here." in md
    assert "**[00:00:05]** And more." in md


# --------------------------------------------------------------------------- write_outputs


def test_write_outputs_writes_every_format(tmp_path):
    paths = write_outputs(meeting(), tmp_path / "meeting", ["vtt", "srt", "txt", "rttm", "json", "md"])
    assert [p.name for p in paths] == [f"meeting.{e}" for e in ("vtt", "srt", "txt", "rttm", "json", "md")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert paths[0].read_text(encoding="utf-8") == render(VttWriter(), meeting())
    assert transcript_from_json(json.loads(paths[4].read_text(encoding="utf-8"))) == meeting()


def test_write_outputs_keeps_dots_in_stem(tmp_path):
    (path,) = write_outputs(silence(), tmp_path / "meeting.2024-05-01", ["vtt"])
    assert path.name == "meeting.2024-05-01.vtt"
    assert output_paths(tmp_path / "a.b", "srt,md") == [tmp_path / "a.b.srt", tmp_path / "a.b.md"]


def test_write_outputs_unknown_format(tmp_path):
    with pytest.raises(UsageError, match="unknown output format 'pdf': choose from json, md, rttm, srt, txt, vtt"):
        write_outputs(meeting(), tmp_path / "m", ["vtt", "pdf"])
    assert list(tmp_path.iterdir()) == []


def test_write_outputs_refuses_existing_without_overwrite(tmp_path):
    existing = tmp_path / "m.srt"
    existing.write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputError) as err:
        write_outputs(meeting(), tmp_path / "m", ["vtt", "srt", "md"])
    assert str(err.value) == f"{existing} already exists: use --overwrite to replace it"
    assert existing.read_text(encoding="utf-8") == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["m.srt"]  # nothing else written


def test_write_outputs_overwrites_when_asked(tmp_path):
    existing = tmp_path / "m.srt"
    existing.write_text("old", encoding="utf-8")
    write_outputs(meeting(), tmp_path / "m", ["srt"], overwrite=True)
    assert existing.read_text(encoding="utf-8") == render(SrtWriter(), meeting())
    assert [p.name for p in tmp_path.iterdir()] == ["m.srt"]


class _Boom(Writer):
    name: ClassVar[str] = "boom"
    extension: ClassVar[str] = "boom"
    error: ClassVar[type[BaseException]] = RuntimeError

    def write(self, transcript, file):
        file.write("half of it")
        file.flush()
        raise self.error("writer failed half-way")


class _Interrupt(_Boom):
    name: ClassVar[str] = "interrupt"
    error: ClassVar[type[BaseException]] = KeyboardInterrupt


@pytest.mark.parametrize("writer", [_Boom, _Interrupt])
def test_failing_writer_leaves_no_partial_or_temp_files(tmp_path, monkeypatch, writer):
    monkeypatch.setitem(WRITERS, writer.name, writer)
    keep = tmp_path / "m.vtt"
    keep.write_text("previous run", encoding="utf-8")
    with pytest.raises(writer.error, match="half-way"):
        write_outputs(meeting(), tmp_path / "m", ["vtt", "srt", writer.name], overwrite=True)
    # all or nothing: the earlier formats were not put in place, no temp file is left
    assert [p.name for p in tmp_path.iterdir()] == ["m.vtt"]
    assert keep.read_text(encoding="utf-8") == "previous run"


def test_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match=r"^output folder .*nowhere does not exist$"):
        write_outputs(meeting(), tmp_path / "nowhere" / "m", ["vtt"])


def test_unwritable_folder_is_an_output_error(tmp_path, monkeypatch):
    real_open = os.open

    def denied(path, flags, mode=0o777, *a, **k):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(OutputError) as err:
        write_outputs(meeting(), tmp_path / "m", ["vtt", "md"])
    assert str(err.value) == f"cannot write to folder {tmp_path}: permission denied"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_an_output_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write_outputs(meeting(), folder / "m", ["vtt"])
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_target_that_is_a_folder(tmp_path):
    (tmp_path / "m.vtt").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_outputs(meeting(), tmp_path / "m", ["vtt"], overwrite=True)


def test_output_files_follow_umask(tmp_path):
    (path,) = write_outputs(silence(), tmp_path / "m", ["txt"])
    old = os.umask(0)
    os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~old


def test_silence_gives_valid_empty_outputs(tmp_path):
    paths = write_outputs(silence(), tmp_path / "quiet", list(WRITERS))
    by_ext = {p.suffix: p.read_text(encoding="utf-8") for p in paths}
    assert by_ext[".vtt"] == "WEBVTT\n"
    assert by_ext[".srt"] == by_ext[".txt"] == by_ext[".rttm"] == ""
    assert json.loads(by_ext[".json"])["segments"] == []
    assert "No speech was detected." in by_ext[".md"]


def test_writers_do_not_change_the_transcript():
    t = meeting()
    before = json.dumps(transcript_to_json(t))
    for cls in WRITERS.values():
        render(cls(), t)
    assert json.dumps(transcript_to_json(t)) == before
    assert t == meeting()


def test_cue_is_frozen():
    cue = Cue(0.0, 1.0, "A", ("x",))
    with pytest.raises(AttributeError):
        cue.start = 2.0  # type: ignore[misc]
