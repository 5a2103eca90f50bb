"""``from tracer import np``: the NumPy-compatible array API."""
from ._api import *  # noqa: F401,F403
from ._api import getitem, setitem  # noqa: F401
from . import random  # noqa: F401
