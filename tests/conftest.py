import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

if os.environ.get("TF_LONGFORMER_REQUIRE_REFERENCE"):
    # In CI the PyTorch reference must be there: parity tests must never skip silently.
    import torch  # noqa: F401
    import transformers  # noqa: F401


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tiny_config(**overrides):
    from tf_longformer import LongformerConfig

    from reference import tiny_config_dict

    return LongformerConfig(**tiny_config_dict(**overrides))


def random_batch(rng, batch, length, vocab=60, n_global=(0, 3), pad_rows=True, sep_pattern=False):
    """Ids with `<s>` first and `</s>` last, right padding on some rows, a random global set per row."""
    ids = rng.integers(5, vocab, size=(batch, length))
    ids[:, 0] = 0
    mask = np.ones((batch, length), np.int64)
    glob = np.zeros((batch, length), np.int64)
    for b in range(batch):
        real = length if (not pad_rows or b % 2 == 0 or length < 3) else int(rng.integers(max(1, length // 2), length + 1))
        ids[b, real:] = 1
        mask[b, real:] = 0
        if real > 1:
            ids[b, real - 1] = 2
        if sep_pattern and real >= 6:
            q = int(rng.integers(1, max(2, real // 3)))
            ids[b, q] = 2
            ids[b, q + 1] = 2
        k = int(rng.integers(n_global[0], n_global[1] + 1))
        if k:
            glob[b, rng.choice(length, size=min(k, length), replace=False)] = 1
    return {"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob}
