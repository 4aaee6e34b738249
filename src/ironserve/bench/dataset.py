"""The random dataset: prompts of a chosen length in words, with a requested output length.

Like vLLM's `random` dataset, lengths vary uniformly within ``range_ratio`` of the target, and a
seed makes the run repeatable. A "token" here is one word of the prompt: the endpoint's tokenizer
decides the real count, which the server reports back in ``usage`` when it can.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# A small fixed vocabulary: prompts are meaningless but deterministic for a seed.
_NATO = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november"
_WORDS = (
    _NATO + " oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()


@dataclass(frozen=True)
class BenchRequest:
    prompt: str
    input_len: int  # words in the prompt (the client's estimate of prompt tokens)
    output_len: int  # max_tokens asked for


def _around(target: int, ratio: float, rng: random.Random) -> int:
    low = max(1, int(target * (1 - ratio)))
    high = max(low, int(target * (1 + ratio)))
    return rng.randint(low, high)


def random_requests(
    count: int, input_len: int, output_len: int, range_ratio: float = 0.0, seed: int = 0
) -> list[BenchRequest]:
    """``count`` requests with input/output lengths within ``range_ratio`` of the targets."""
    if count < 1 or input_len < 1 or output_len < 1:
        raise ValueError("count, input_len and output_len must be positive")
    if not 0.0 <= range_ratio < 1.0:
        raise ValueError("range_ratio must be in [0, 1)")
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        n_in = _around(input_len, range_ratio, rng)
        n_out = _around(output_len, range_ratio, rng)
        prompt = " ".join(rng.choice(_WORDS) for _ in range(n_in))
        requests.append(BenchRequest(prompt, n_in, n_out))
    return requests
