"""Generate tiny Hugging Face *TensorFlow* Longformer fixtures (tf_model.h5).

These fixtures let our Keras 3 Longformer tests check that we load checkpoints
written by `transformers`' TF implementation (legacy Keras 2 / tf-keras) and
reproduce its outputs.  The script is NOT run by the test suite; it needs a
separate environment (see tests/fixtures/hf_tf_h5/README.md):

    python3 -m venv /work/venv-hftf
    /work/venv-hftf/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 \
        "transformers==4.57.*" h5py numpy
    TF_USE_LEGACY_KERAS=1 /work/venv-hftf/bin/python tools/make_hf_tf_h5_fixture.py

For each head it writes tests/fixtures/hf_tf_h5/<head>/{config.json,
tf_model.h5, expected.npz}, then reloads every directory with
`from_pretrained` to confirm the stored outputs, and dumps the h5 dataset
layout of the base and masked_lm checkpoints into WEIGHT_NAMES.txt.
"""

import argparse
import os
import sys

# transformers' TF models need Keras 2 (tf-keras); must be set before TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    LongformerConfig,
    TFLongformerForMaskedLM,
    TFLongformerForMultipleChoice,
    TFLongformerForQuestionAnswering,
    TFLongformerForSequenceClassification,
    TFLongformerForTokenClassification,
    TFLongformerModel,
)

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf_tf_h5")

# head name -> (HF TF class, extra config kwargs, per-head seed)
HEADS = {
    "base": (TFLongformerModel, {}, 100),
    "masked_lm": (TFLongformerForMaskedLM, {}, 101),
    "sequence_classification": (TFLongformerForSequenceClassification, {"num_labels": 3}, 102),
    "token_classification": (TFLongformerForTokenClassification, {"num_labels": 4}, 103),
    "question_answering": (TFLongformerForQuestionAnswering, {}, 104),
    "multiple_choice": (TFLongformerForMultipleChoice, {}, 105),
}

SEQ_LEN = 11  # not a multiple of max(attention_window)=6 -> internal padding to 12


def make_config(**extra):
    return LongformerConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=66,
        attention_window=[4, 6],  # per-layer list
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        sep_token_id=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **extra,
    )


def qa_row(rng, q_len, c_len, n_pad):
    """`<s> q </s></s> c </s> <pad>*n_pad`: exactly three sep (id 2) tokens."""
    q = rng.integers(3, 100, size=q_len)
    c = rng.integers(3, 100, size=c_len)
    ids = [0, *q, 2, 2, *c, 2] + [1] * n_pad
    assert len(ids) == SEQ_LEN
    return ids


def make_inputs(rng):
    """Batch of 2 x 11. Row 1 is padded (id 1, attention 0) on its last 3 tokens."""
    ids = np.array([qa_row(rng, 2, 5, 0), qa_row(rng, 1, 3, 3)], dtype=np.int32)
    attn = (ids != 1).astype(np.int32)
    glob = np.zeros_like(ids)
    glob[0, [0, 5]] = 1  # row 0: global at positions 0 and 5
    glob[1, 0] = 1  # row 1: global at position 0 only
    return ids, attn, glob


def make_mc_inputs(rng):
    """Batch 2 x 2 choices x 11. Batch 1's choices are padded (3 and 1 pads)."""
    ids = np.array(
        [
            [qa_row(rng, 2, 5, 0), qa_row(rng, 3, 4, 0)],
            [qa_row(rng, 1, 3, 3), qa_row(rng, 2, 4, 1)],
        ],
        dtype=np.int32,
    )
    attn = (ids != 1).astype(np.int32)
    glob = np.zeros_like(ids)
    glob[0, :, [0, 5]] = 1
    glob[1, :, 0] = 1
    return ids, attn, glob


def perturb_weights(model, rng):
    """Add noise to every variable so zero biases / unit LayerNorm gammas become
    non-trivial (1-D variables: std 0.1) and kernels / embeddings are large
    enough (std 0.2, vs HF's init 0.02) that outputs differ clearly between
    tokens and rows, so any loading mistake shows well above float tolerance."""
    for v in model.weights:
        std = 0.1 if len(v.shape) == 1 else 0.2
        v.assign(v.numpy() + rng.normal(0.0, std, size=v.shape).astype(np.float32))


def f32(x):
    return np.asarray(x, dtype=np.float32)


def run_head(name, model, ids, attn, glob):
    """Return the dict of outputs stored in expected.npz for one head."""
    kw = dict(input_ids=ids, attention_mask=attn, training=False)
    out = {}
    if name == "base":
        o = model(**kw, global_attention_mask=glob, output_hidden_states=True)
        out["last_hidden_state"] = f32(o.last_hidden_state)
        out["pooler_output"] = f32(o.pooler_output)
        out["hidden_states"] = f32(np.stack([f32(h) for h in o.hidden_states]))  # (L+1,B,T,H)
        # Same inputs without any global attention (local-only path).
        o = model(**kw)
        out["last_hidden_state_no_global"] = f32(o.last_hidden_state)
        out["pooler_output_no_global"] = f32(o.pooler_output)
    elif name == "question_answering":
        # Default: HF puts global attention on all tokens before the first </s>.
        o = model(**kw)
        out["start_logits"] = f32(o.start_logits)
        out["end_logits"] = f32(o.end_logits)
        first_sep = np.argmax(ids == 2, axis=1)[:, None]
        out["auto_global_attention_mask"] = (np.arange(SEQ_LEN)[None] < first_sep).astype(np.int32)
        # Explicit global_attention_mask.
        o = model(**kw, global_attention_mask=glob)
        out["start_logits_global"] = f32(o.start_logits)
        out["end_logits_global"] = f32(o.end_logits)
    else:
        out["logits"] = f32(model(**kw, global_attention_mask=glob).logits)
        if name == "sequence_classification":
            # Default: HF puts global attention on the CLS token only.
            out["logits_default_global"] = f32(model(**kw).logits)
    return out


def _s(x):
    return x.decode() if isinstance(x, bytes) else x


def dump_weight_names(out_dir):
    """Write every dataset (full h5 path + shape) of the base and masked_lm
    checkpoints, and the head-only groups of the other checkpoints.  Order is
    each group's `weight_names` attribute (the order tf-keras writes)."""
    lines = [
        "# h5 layout written by transformers 4.57 TF save_pretrained (tf-keras 2.21).",
        "# Root attr layer_names lists top-level groups (one per top-level Keras layer);",
        "# each group's attr weight_names lists its datasets, relative to the group.",
        "# Full path = <layer_name>/<weight_name>; shape as stored (Dense kernel is [in, out]).",
        "",
    ]
    for name in HEADS:
        full = name in ("base", "masked_lm")
        with h5py.File(os.path.join(out_dir, name, "tf_model.h5"), "r") as f:
            layer_names = [_s(n) for n in f.attrs["layer_names"]]
            lines.append(f"## {name}/tf_model.h5  layer_names={layer_names}"
                         + ("" if full else "  (head groups only; 'longformer' group same layout as base; it has pooler/dense only where the head uses the pooler: base, multiple_choice)"))
            for g in layer_names:
                if not full and g == "longformer":
                    continue
                for w in f[g].attrs["weight_names"]:
                    p = f"{g}/{_s(w)}"
                    lines.append(f"{p} {list(f[p].shape)}")
        lines.append("")
    with open(os.path.join(out_dir, "WEIGHT_NAMES.txt"), "w") as fh:
        fh.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)

    for name, (cls, extra, seed) in HEADS.items():
        tf.keras.backend.clear_session()  # reset auto layer names (dropout_N, ...)
        tf.keras.utils.set_random_seed(seed)  # python, numpy and TF seeds
        rng = np.random.default_rng(seed)
        ids, attn, glob = make_mc_inputs(rng) if name == "multiple_choice" else make_inputs(rng)

        model = cls(make_config(**extra))
        # Build all variables the way from_pretrained does. (Calling on HF's
        # dummy_inputs would fail: their length 6 is padded to max(window)=6,
        # which is not a multiple of layer 0's window 4.)
        model.build_in_name_scope()
        perturb_weights(model, rng)

        head_dir = os.path.join(out_dir, name)
        model.save_pretrained(head_dir)  # config.json + tf_model.h5
        outputs = run_head(name, model, ids, attn, glob)
        np.savez(
            os.path.join(head_dir, "expected.npz"),
            input_ids=ids,
            attention_mask=attn,
            global_attention_mask=glob,
            **outputs,
        )

        # Verify: a fresh from_pretrained load reproduces the stored outputs.
        del model
        tf.keras.backend.clear_session()
        reloaded = cls.from_pretrained(head_dir)
        again = run_head(name, reloaded, ids, attn, glob)
        for k, v in outputs.items():
            if not np.array_equal(v, again[k]):
                diff = np.max(np.abs(v - again[k]))
                sys.exit(f"{name}/{k}: reload mismatch (max abs diff {diff})")
        print(f"{name}: reload OK, outputs {[(k, v.shape) for k, v in outputs.items()]}")

    dump_weight_names(out_dir)

    total = 0
    for root, _, files in sorted(os.walk(out_dir)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            total += os.path.getsize(p)
            print(f"{os.path.getsize(p):>9}  {os.path.relpath(p, out_dir)}")
    print(f"{total:>9}  total (transformers {transformers.__version__}, tensorflow {tf.__version__})")
    assert total < 1_000_000, "fixture directory must stay under 1 MB"


if __name__ == "__main__":
    main()
