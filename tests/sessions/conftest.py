"""One torch thread for the session tests: tiny models on a shared CPU run much faster
without intra-op threads competing for cores."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
