"""Exceptions that the command line reports as one line instead of a traceback."""


class VisionKitError(Exception):
    """Base class of errors caused by user input (configs, data files, checkpoints)."""


class DataError(VisionKitError, ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names the file (and line)."""


class DatasetNotFoundError(VisionKitError, FileNotFoundError):
    """A dataset root or file does not exist; the message names the path and the config key."""


class CheckpointError(VisionKitError, RuntimeError):
    """A checkpoint file cannot be read."""


class ConfigError(VisionKitError, ValueError):
    """A config value is invalid or two config parts do not fit together; the message names the key."""


class NonFiniteError(VisionKitError, FloatingPointError):
    """Training produced NaN or inf (a loss term or the weights); the message names the step and the terms."""
