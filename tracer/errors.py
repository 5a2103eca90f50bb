"""Exception types users can catch.  Messages say what was expected, where
(the block path, such as ``0.net.1``) and, where possible, how to fix it."""


class TracerError(Exception):
    """Base class of every error this library raises on purpose."""


class ShapeError(TracerError, ValueError):
    """An array's shape does not fit what an op or a block expects."""


class DTypeError(TracerError, TypeError):
    """An unknown or unsupported dtype."""


class DeviceError(TracerError, ValueError):
    """A device that does not exist on this machine."""


class ParameterFileError(TracerError, ValueError):
    """A parameter file or state dict that does not match the model."""
