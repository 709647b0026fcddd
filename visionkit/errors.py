"""Exceptions that the command line reports as one line instead of a traceback."""


class VisionKitError(Exception):
    """Base class of errors caused by user input (configs, data files, checkpoints)."""


class DataError(VisionKitError, ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names the file (and line)."""


class DatasetNotFoundError(VisionKitError, FileNotFoundError):
    """A dataset root or file does not exist; the message names the path and the config key."""


class CheckpointError(VisionKitError, RuntimeError):
    """A checkpoint file cannot be read."""
