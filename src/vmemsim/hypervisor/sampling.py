"""Active-memory estimation from sampling [W02 s.5.3].

Each period the host invalidates `sample_size` random guest pages; the fraction touched before
the period ends is one sample f. Estimates: a slow and a fast exponentially weighted average
(gains are parameters: ESX's are unconfirmed); the estimate used is their maximum, so it rises
quickly and decays slowly. Until the first sample a VM is taken as fully active.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ActiveEstimate:
    fast_gain: float
    slow_gain: float
    slow: float = 1.0
    fast: float = 1.0
    last: float = 1.0
    samples: int = 0

    def update(self, f: float) -> None:
        if self.samples == 0:
            self.slow = self.fast = f
        else:
            self.slow += self.slow_gain * (f - self.slow)
            self.fast += self.fast_gain * (f - self.fast)
        self.last = f
        self.samples += 1

    @property
    def value(self) -> float:
        return max(self.slow, self.fast)
