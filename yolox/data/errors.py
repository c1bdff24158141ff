"""Errors for bad dataset input or data settings; each message is one line naming the file or
setting, the entry and the fix."""


from yolox.utils.user_errors import UserError


class DataError(UserError, ValueError):
    """Bad annotation, image or augmentation setting."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A dataset file or folder that should exist does not."""
