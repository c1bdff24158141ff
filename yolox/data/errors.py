"""Errors for bad dataset input or data settings; each message is one line naming the file or
setting, the entry and the fix."""


class DataError(ValueError):
    """Bad annotation, image or augmentation setting."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A dataset file or folder that should exist does not."""
