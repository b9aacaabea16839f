"""Seeds derived from several integers (a run's seed, a stream, an episode ...): one place, so that
every reset seed and every evaluation stream in the project is drawn the same way."""
from __future__ import annotations

import numpy as np


def derived_seed(*words: int) -> int:
    """A 32-bit seed from the integers `words` (numpy's SeedSequence): distinct tuples give
    independent seeds, the same tuple the same seed on every machine."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])
