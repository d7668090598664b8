"""Hypothesis profiles (issue #12), chosen with `pytest --hypothesis-profile=NAME`:

- `default` (`make test`): 50 examples per property, derandomized and without the example database, so a run
  depends on nothing but the code (not on the hash seed, the clock or earlier runs);
- `thorough` (`make test-all`): 2,000 fresh examples per property, and larger specs (`strategies.spec_steps`);
- `triage`: the default without shrinking, a quick list of what fails (shrinking many failing properties one after
  another can take many minutes).

Tests set no example counts of their own: the profile decides.

Every test runs with one torch thread: `make test` runs two pytest workers on two cores, and tests build tiny
tensors of ever new shapes, for which oneDNN compiles a kernel per shape with several threads (about 30 ms per
convolution). No shape or value depends on the thread count.

The test package is code we trust, as a user trusts their own package: `ps.allow("tests")` lets specs and configs
in the tests name factories and targets defined under `tests` (tests/test_trust.py checks what stays refused).
"""

from collections.abc import Iterator

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

import perceptspec as ps

ps.allow("tests")

#: drawing random specs is slow by Hypothesis's standards (materializing is what the properties measure)
_SLOW_DRAWS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("default", max_examples=50, derandomize=True, database=None, deadline=None,
                          suppress_health_check=_SLOW_DRAWS, print_blob=True)
settings.register_profile("thorough", max_examples=2000, derandomize=False, database=None, deadline=None,
                          suppress_health_check=_SLOW_DRAWS, print_blob=True)
settings.register_profile("triage", parent=settings.get_profile("default"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("default")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
