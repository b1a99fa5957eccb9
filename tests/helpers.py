"""What the tests share that needs neither torch nor transformers: the tiny config, the head names, and a lazy
door to the PyTorch reference (`reference.py`), so that a module can be collected without torch.

Tests that use the reference carry the `reference` marker (`-m reference` / `-m "not reference"`); calling
`make_reference` / `run_reference` / `load_reference` skips the calling test when torch or transformers is
missing (or fails the session at start-up when `TF_LONGFORMER_REQUIRE_REFERENCE` is set, see conftest.py).
"""

from __future__ import annotations

import os


def package_parent() -> str:
    """The folder holding the `tf_longformer` this process imported: the source tree in an editable install,
    site-packages in CI's latest and minimum legs. Subprocesses of the tests get it on PYTHONPATH (never the
    source tree itself), so they run the same copy as the test."""
    import tf_longformer

    return os.path.dirname(os.path.dirname(os.path.abspath(tf_longformer.__file__)))

# head -> (PyTorch transformers class, our class)
HEADS = {
    "base": ("LongformerModel", "TFLongformerModel"),
    "masked_lm": ("LongformerForMaskedLM", "TFLongformerForMaskedLM"),
    "sequence_classification": ("LongformerForSequenceClassification", "TFLongformerForSequenceClassification"),
    "token_classification": ("LongformerForTokenClassification", "TFLongformerForTokenClassification"),
    "question_answering": ("LongformerForQuestionAnswering", "TFLongformerForQuestionAnswering"),
    "multiple_choice": ("LongformerForMultipleChoice", "TFLongformerForMultipleChoice"),
}


def tiny_config_dict(**overrides):
    cfg = dict(
        vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=130, attention_window=[4, 6], type_vocab_size=1, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, sep_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-5, num_labels=3,
        # No global bucket: two paths, 0 global tokens and the full length (the default has five). A bucket path
        # costs about 3 s per layer to trace and instantiate in a graph-mode training step (tiny config, two
        # layers: a 3-step fit 6.9 s without it, 12.9 s with buckets [4]). The tests that must cross a bucket
        # ask for one: the PyTorch parity pairs (reference.make_reference), the SavedModel exports
        # (export_harness.make_model), test_training's mixed-global graph/XLA tests, and the attention and
        # backbone tests with their own bucket sets.
        global_buckets=[],
    )
    cfg.update(overrides)
    return cfg


def load_reference():
    """The `reference` module (imports torch + transformers); skips the calling test when either is missing."""
    import reference

    return reference


def make_reference(head, directory, seed=0, **config_overrides):
    """`reference.make_reference`, imported on first use."""
    return load_reference().make_reference(head, directory, seed=seed, **config_overrides)


def run_reference(model, inputs, **kwargs):
    """`reference.run_reference`, imported on first use."""
    return load_reference().run_reference(model, inputs, **kwargs)
