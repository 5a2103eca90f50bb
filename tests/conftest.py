import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'examples'))


@pytest.fixture(autouse=True)
def _seed():
    import numpy
    from tracer import np
    np.random.seed(0)
    numpy.random.seed(0)
    from runtime import hybrid
    hybrid._warned_sites.clear()      # "warn once per site" is per process
