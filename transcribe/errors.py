"""One base error for everything a user can cause; the CLI prints its message as one line."""


class TranscribeError(Exception):
    """Base of every error the library raises on purpose.

    The message is one line that says what went wrong and, where it can, what to do.
    """

    exit_code = 1


class InputError(TranscribeError):
    """A recording cannot be read: missing, not media, corrupt, no audio stream."""

    exit_code = 2


class ModelError(TranscribeError):
    """A model is unknown, not pulled, or fails its checksum."""

    exit_code = 3


class OutputError(TranscribeError):
    """An output cannot be written, or would overwrite a file without --overwrite."""

    exit_code = 4


class UsageError(TranscribeError):
    """Options that cannot work together, or a value out of range."""

    exit_code = 2
