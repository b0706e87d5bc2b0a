import os

import numpy as np
import pytest

from npformer.backend import backend_name, get_backend, to_device, to_numpy


def _cupy_usable():
    try:
        get_backend("cupy")
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _cupy_usable():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def xp():
    """The backend under test: $NPFORMER_BACKEND (numpy, strict or cupy)."""
    return get_backend()


@pytest.fixture
def dev(xp):
    """Host array -> backend array."""
    return lambda a: to_device(np.asarray(a), xp)


@pytest.fixture
def host():
    return to_numpy


def pytest_report_header(config):
    return f"npformer backend: {backend_name()} (NPFORMER_BACKEND={os.environ.get('NPFORMER_BACKEND', '')!r})"
