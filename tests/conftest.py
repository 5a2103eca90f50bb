import os
import pathlib
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'examples'))
# compiled object code goes to a fresh cache, not the user's ~/.cache/tracer
os.environ.setdefault('TRACER_CACHE_DIR', tempfile.mkdtemp(prefix='tracer-test-cache-'))


@pytest.fixture(autouse=True)
def _seed():
    import numpy
    from tracer import np
    np.random.seed(0)
    numpy.random.seed(0)
    from runtime import hybrid
    hybrid._warned_sites.clear()      # "warn once per site" is per process
