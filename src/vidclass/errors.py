"""The one exception type for problems a user can cause or fix."""


class VidclassError(Exception):
    """A user-facing error: bad input file, unknown model, missing weights, bad option.

    The message names the thing at fault and the cause, and is meant to be printed on
    one line without a traceback.
    """


class StorageError(VidclassError):
    """A database vidclass keeps cannot be used: damaged, locked, or not readable."""
