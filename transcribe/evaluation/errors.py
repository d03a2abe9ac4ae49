"""The evaluation's one error class."""

from transcribe.errors import InputError


class EvalError(InputError):
    """A reference, hypothesis, manifest or result file cannot be used.

    The message is one line that starts with the file (and the line, where there is one):
    "refs/a.rttm:3: expected 10 fields, got 7".
    """
