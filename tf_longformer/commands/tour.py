"""`tf-longformer tour`."""

from __future__ import annotations

import os
import tempfile
import time

from tf_longformer.commands import quiet_tf


def cmd_tour(args) -> int:
    """Builds a small random Longformer, saves it in the Hugging Face layout, reloads it with every head, runs it."""
    quiet_tf()
    import numpy as np

    import tf_longformer as T

    rng = np.random.default_rng(args.seed)
    config = T.LongformerConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=args.length + 2, attention_window=[32, 64], type_vocab_size=1, num_labels=3,
    )
    directory = args.checkpoint or tempfile.mkdtemp(prefix="tf-longformer-tour-")
    T.TFLongformerForMaskedLM(config).save_pretrained(directory)
    print(f"checkpoint: {directory} ({', '.join(sorted(os.listdir(directory)))})")
    ids = rng.integers(5, config.vocab_size, size=(2, args.length))
    ids[:, 0], ids[:, -1] = 0, 2
    ids[:, 20:22] = 2  # <s> question </s></s> context </s>, for the QA head's automatic global attention
    mask = np.ones_like(ids)
    mask[1, args.length // 2:] = 0
    ids[1, args.length // 2:] = 1
    heads = [
        (T.TFLongformerModel, "last_hidden_state"),
        (T.TFLongformerForMaskedLM, "logits"),
        (T.TFLongformerForSequenceClassification, "logits"),
        (T.TFLongformerForTokenClassification, "logits"),
        (T.TFLongformerForQuestionAnswering, "start_logits"),
        (T.TFLongformerForMultipleChoice, "logits"),
    ]
    import warnings

    for cls, key in heads:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = cls.from_pretrained(directory)
        new = any("newly initialised" in str(w.message) for w in caught)
        x = {"input_ids": ids, "attention_mask": mask}
        if cls is T.TFLongformerForMultipleChoice:
            x = {k: np.stack([v, v], 1) for k, v in x.items()}
        start = time.perf_counter()
        out = model(x)
        took = time.perf_counter() - start
        value = out[key].numpy()
        print(f"{cls.__name__:40s} {key:18s} shape={str(value.shape):16s} mean={value.mean():+.4f} "
              f"{took * 1000:7.1f} ms{'  (head newly initialised)' if new else ''}")
    return 0



def register(sub) -> None:
    p = sub.add_parser("tour", help=cmd_tour.__doc__, description=cmd_tour.__doc__)
    p.add_argument("--length", type=int, default=1000, help="tokens per row (default 1000)")
    p.add_argument("--checkpoint", help="where to write the checkpoint (default: a temporary directory)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tour)
