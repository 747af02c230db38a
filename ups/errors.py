"""The one exception type for bad user input.

Anything a user hands us (config, data store, checkpoint, gate or champion file) is validated where it enters and, when
wrong, raises :class:`UserInputError` with one readable line that names what is wrong. The CLI and the pytest plugin
turn it into that line and exit code 2, never a traceback.
"""


class UserInputError(Exception):
    """Bad user input; ``str(err)`` is the one line shown to the user."""

    exit_code = 2


class MissingExtra(UserInputError):
    """A model needs an optional dependency that is not installed (``pip install -e ".[extra]"``).

    The harness skips a baseline that raises it (a reference point one cannot build here); elsewhere it is bad input.
    """


class CandidateFailed(RuntimeError):
    """Training a suite's candidate (or a trained baseline) aborted, a guard having fired: its gates fail with this
    message and the session goes on."""
