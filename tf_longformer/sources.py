"""Checkpoints of other layouts and model families as Hugging Face Longformer (config, state dict) pairs.

Pure NumPy on `transformers`-named state dicts (no torch, no transformers); `tf-longformer convert`, the
models' `from_source` and the tests build on it. The layouts (`source`):

- `hf`: a Hugging Face Longformer (kept; `max_length` extends or cuts its positions);
- `allenai`: the original allenai/longformer code (`roberta.*` names, ONE-SIDED windows, doubled here);
- `roberta-long`: `LongformerSelfAttention` inside a RoBERTa (`roberta.*` names, `*_global` projections);
- `roberta`: a plain RoBERTa-family encoder (RoBERTa, XLM-RoBERTa, CamemBERT: the same weights, positions
  from pad_token_id + 1);
- `bert`: a BERT encoder (`bert.*` names, positions from 0, token types, a pooler, the `cls.predictions` MLM
  head). Its position row i becomes the Longformer's row pad_token_id + 1 + i (the RoBERTa position convention
  the Longformer uses), the MLM head goes onto `lm_head`, and pooler + classifier onto the classification head
  (`dense` + tanh + `out_proj` on the first token, the same computation).

For the two plain sources the Longformer paper's recipe is applied: the positions are extended to `max_length`
(the learned ones copied over and over, or the new rows drawn at random with `position_init="random"`), and the
global q/k/v projections start as copies of the local ones (`copy_local_to_global`, which also refreshes them
after continued masked-LM pretraining, where they receive no gradient).
"""

from __future__ import annotations

import re

import numpy as np

SOURCES = ("auto", "hf", "allenai", "roberta-long", "roberta", "bert")
#: the plain encoders converted with the paper's recipe
PLAIN_SOURCES = ("roberta", "bert")
#: `model_type` of the RoBERTa family: the same weights and position convention as RoBERTa
ROBERTA_FAMILY = ("roberta", "xlm-roberta", "camembert")
BERT_FAMILY = ("bert",)
POSITION_INITS = ("copy", "random")
# keys of the original allenai LongformerConfig that have no meaning in the Hugging Face layout
ALLENAI_KEYS = ("attention_mode", "attention_dilation", "autoregressive")
# config keys of the sources that the Longformer config does not carry
DROPPED_KEYS = ALLENAI_KEYS + ("_name_or_path", "transformers_version", "architectures", "position_embedding_type",
                               "use_cache", "classifier_dropout", "is_decoder", "add_cross_attention",
                               "gradient_checkpointing", "directionality", "pooler_fc_size",
                               "pooler_num_attention_heads", "pooler_num_fc_layers", "pooler_size_per_head",
                               "pooler_type", "tokenizer_class")
_PROJECTIONS = ("query", "key", "value")


class ConversionError(ValueError):
    """A checkpoint that cannot be converted as asked."""


def detect_source(config: dict, state: dict) -> str:
    """Which layout a checkpoint is in (see the module docstring)."""
    if any(k in config for k in ALLENAI_KEYS):
        return "allenai"
    model_type = config.get("model_type")
    if model_type == "longformer":
        return "hf"
    if any(".query_global." in k for k in state):
        return "roberta-long"
    if model_type in ROBERTA_FAMILY or (model_type is None and any(k.startswith("roberta.") for k in state)):
        return "roberta"
    if model_type in BERT_FAMILY or (model_type is None and any(k.startswith(("bert.", "cls.predictions."))
                                                                for k in state)):
        return "bert"
    raise ConversionError(
        f"Cannot tell the layout of this checkpoint (model_type {model_type!r}): supported are Longformer, "
        f"the RoBERTa family {ROBERTA_FAMILY}, BERT {BERT_FAMILY} and the allenai and RoBERTa-long layouts; give "
        f"--source (one of {SOURCES[1:]}) if it is one of those.")


def extend_positions(table: np.ndarray, new_rows: int, offset: int, init: str = "copy", seed: int | None = 0,
                     std: float = 0.02) -> np.ndarray:
    """A position table cut or extended to `new_rows` rows. The rows before `offset` (pad_token_id + 1: the
    padding position and the unused ones below it) are kept; the learned rows after them are kept too, and the
    rows beyond are, with `init="copy"`, the learned ones copied over and over (the Longformer paper's
    initialisation), or with `init="random"` drawn from N(0, std) with NumPy's generator seeded by `seed`."""
    if init not in POSITION_INITS:
        raise ConversionError(f"position_init (--position-init) must be one of {POSITION_INITS}, got {init!r}.")
    if new_rows <= table.shape[0]:
        return table[:new_rows].copy()
    learned = table[offset:]
    if len(learned) == 0:
        raise ConversionError(f"The position table has {table.shape[0]} rows, none after the offset {offset}: "
                              "nothing to extend from.")
    out = np.empty((new_rows, table.shape[1]), table.dtype)
    out[:table.shape[0]] = table
    if init == "random":
        rng = np.random.default_rng(seed)
        out[table.shape[0]:] = rng.normal(0.0, std, size=(new_rows - table.shape[0], table.shape[1]))
        return out
    k = table.shape[0]
    while k < new_rows:
        n = min(len(learned), new_rows - k)
        out[k:k + n] = learned[:n]
        k += n
    return out


def copy_local_to_global(state: dict, num_layers: int) -> dict:
    """`*_global` q/k/v of every layer set to copies of the local ones, in a Hugging Face Longformer state dict
    (with or without the `longformer.` prefix); returns the dict (changed in place)."""
    for i in range(num_layers):
        for prefix in ("longformer.", ""):
            for kind in _PROJECTIONS:
                for p in ("weight", "bias"):
                    name = f"{prefix}encoder.layer.{i}.attention.self.{kind}.{p}"
                    if name in state:
                        state[f"{prefix}encoder.layer.{i}.attention.self.{kind}_global.{p}"] = np.array(state[name])
    return state


def check_attention_window(window, num_layers: int):
    """An int (every layer) or one int per layer, each even and positive."""
    ws = window if isinstance(window, (list, tuple)) else [window]
    if (not ws or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w <= 0 or w % 2 for w in ws)
            or (isinstance(window, (list, tuple)) and len(ws) != num_layers)):
        raise ConversionError(f"attention_window must be an even positive integer or a list of {num_layers} of them "
                              f"(one per layer), got {window!r}.")
    return [int(w) for w in ws] if isinstance(window, (list, tuple)) else int(window)


def bert_state_to_longformer(config: dict, state: dict) -> dict:
    """BERT names -> RoBERTa-style names (`longformer.*`, `lm_head.*`, `classifier.dense/out_proj`), positions
    shifted by pad_token_id + 1 (rows below that are zero, as the padding row of an `nn.Embedding` starts)."""
    pad = int(config.get("pad_token_id") or 0)
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError(f"position_embedding_type {config['position_embedding_type']!r} is not supported: the "
                              "Longformer has absolute position embeddings only.")
    bare_names = {k[len("bert."):] if k.startswith("bert.") else k for k in state}
    # BertForSequenceClassification: pooler (dense + tanh on token 0) + classifier, which is the Longformer's
    # classification head (dense + tanh + out_proj on token 0); multiple choice keeps pooler and classifier apart,
    # as the Longformer's does.
    multiple_choice = "MultipleChoice" in " ".join(config.get("architectures") or [])
    sequence_head = "pooler.dense.weight" in bare_names and "classifier.weight" in bare_names and not multiple_choice
    out: dict = {}
    for name, array in state.items():
        bare = name[len("bert."):] if name.startswith("bert.") else name
        if bare.startswith(("embeddings.", "encoder.")) or (bare.startswith("pooler.") and not sequence_head):
            out["longformer." + bare] = array
        elif bare.startswith("pooler.dense."):
            out["classifier.dense." + bare[len("pooler.dense."):]] = array
        elif bare.startswith("classifier.") and sequence_head:
            out["classifier.out_proj." + bare[len("classifier."):]] = array
        elif bare.startswith("cls.predictions."):
            rest = bare[len("cls.predictions."):]
            target = {"transform.dense.weight": "lm_head.dense.weight", "transform.dense.bias": "lm_head.dense.bias",
                      "transform.LayerNorm.weight": "lm_head.layer_norm.weight",
                      "transform.LayerNorm.bias": "lm_head.layer_norm.bias", "decoder.weight": "lm_head.decoder.weight",
                      "bias": "lm_head.bias", "decoder.bias": "lm_head.bias"}.get(rest)
            if target is not None:
                out[target] = array
        elif bare.startswith("cls.seq_relationship."):
            continue  # next-sentence prediction: no Longformer head takes it
        else:  # token classification, question answering: the same names
            out[bare] = array
    if any(k.startswith("lm_head.") for k in out) and config.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"hidden_act {config['hidden_act']!r}: BERT's MLM head applies it, the Longformer's "
                              "applies gelu; only gelu BERT models convert with their MLM head (convert the "
                              "encoder alone with --head base).")
    for name in [k for k in out if k.endswith("embeddings.position_embeddings.weight")]:
        table = np.asarray(out[name])
        out[name] = np.concatenate([np.zeros((pad + 1, table.shape[1]), table.dtype), table])
    return out


def check_tied_decoder(state: dict, model) -> None:
    """The Longformer's MLM decoder is the word embedding matrix; a source with its own decoder matrix (untied
    embeddings) would lose it without a word when `model` (a task model) has an MLM head."""
    if not any(p.startswith("lm_head") for p in getattr(model, "head_prefixes", ())):
        return
    decoder = state.get("lm_head.decoder.weight")
    embeddings = state.get("longformer.embeddings.word_embeddings.weight",
                           state.get("embeddings.word_embeddings.weight"))
    if decoder is not None and embeddings is not None and not np.array_equal(np.asarray(decoder),
                                                                            np.asarray(embeddings)):
        raise ConversionError("The checkpoint's MLM decoder differs from its word embeddings (untied, "
                              "tie_word_embeddings false); the Longformer's MLM head decodes with the word embeddings. "
                              "Convert the encoder alone (--head base) or a head other than masked-lm.")


def convert_state(config: dict, state: dict, source: str = "auto", attention_window=None,
                  max_length: int | None = None, position_init: str = "copy", seed: int | None = 0
                  ) -> tuple[dict, dict, str]:
    """(config, state) of any supported layout -> (Hugging Face Longformer config dict, state dict, source)."""
    config = dict(config)
    if source == "auto":
        source = detect_source(config, state)
    if source not in SOURCES[1:]:
        raise ConversionError(f"--source must be one of {SOURCES}, got {source!r}.")
    if position_init not in POSITION_INITS:
        raise ConversionError(f"position_init (--position-init) must be one of {POSITION_INITS}, got "
                              f"{position_init!r}.")
    if attention_window is not None and source not in PLAIN_SOURCES:
        raise ConversionError("--attention-window sets the window of a plain RoBERTa or BERT checkpoint; a Longformer "
                              "checkpoint was trained with its own windows and keeps them.")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ConversionError(f"max_length must be a positive integer, got {max_length!r}.")
    n_layers = int(config.get("num_hidden_layers", 12))
    # checkpoints converted from the original TensorFlow BERT name LayerNorm's scale and shift gamma / beta
    state = {re.sub(r"(LayerNorm|layer_norm)\.gamma$", r"\1.weight",
                    re.sub(r"(LayerNorm|layer_norm)\.beta$", r"\1.bias", k)): v for k, v in state.items()}
    if source == "bert":
        state = bert_state_to_longformer(config, state)
        config["pad_token_id"] = int(config.get("pad_token_id") or 0)
    else:
        state = {re.sub(r"^roberta\.", "longformer.", k): v for k, v in state.items()}
    if source == "allenai":
        dil = config.get("attention_dilation")
        if dil is not None and any(int(d) != 1 for d in (dil if isinstance(dil, list) else [dil])):
            raise ConversionError(f"attention_dilation {dil} is not supported (only the original CUDA kernel had "
                                  "dilation; the Hugging Face Longformer has none).")
        if config.get("autoregressive"):
            raise ConversionError("autoregressive (one-sided) attention is not supported by the Hugging Face "
                                  "Longformer.")
        w = config.get("attention_window")
        if w is None:
            raise ConversionError("The allenai config has no attention_window.")
        config["attention_window"] = [2 * int(x) for x in w] if isinstance(w, list) else 2 * int(w)
    elif source in PLAIN_SOURCES:
        if any(".query_global." in k for k in state):
            raise ConversionError("This checkpoint already has global projections: use --source roberta-long.")
        config["attention_window"] = check_attention_window(512 if attention_window is None else attention_window,
                                                            n_layers)
        copy_local_to_global(state, n_layers)
        if max_length is None:
            max_length = 4096
    for key in DROPPED_KEYS:
        config.pop(key, None)
    config["model_type"] = "longformer"
    if max_length is not None:
        pad = int(config.get("pad_token_id", 1))
        rows = max_length + pad + 1
        for name in [k for k in state if k.endswith("embeddings.position_embeddings.weight")]:
            state[name] = extend_positions(np.asarray(state[name]), rows, pad + 1, position_init, seed,
                                           float(config.get("initializer_range", 0.02)))
        for name in [k for k in state if k.endswith("embeddings.position_ids")]:
            state.pop(name)
        config["max_position_embeddings"] = rows
    return config, state, source


def refresh_global_projections(model) -> None:
    """Copies every layer's local q/k/v projections onto the global ones of a built model, in place: the step
    of the recipe after continued masked-LM pretraining (which trains the local projections only, as no token
    is global) and before fine-tuning with global attention."""
    state = model.hf_state_dict()
    model.load_hf_state_dict(copy_local_to_global(state, model.config.num_hidden_layers), source="<local projections>")


def _token_ids_from_tokenizer(directory: str, config: dict) -> None:
    """A BERT config names no bos / eos / sep ids (the Longformer's defaults, 0 and 2, are other tokens in its
    vocabulary): they are taken from the tokenizer beside it, `[CLS]` and `[SEP]`, where the config lacks them."""
    import os

    if not any(os.path.isfile(os.path.join(directory, n)) for n in ("tokenizer.json", "vocab.txt")):
        return
    from tf_longformer.tokenizer import LongformerTokenizerFast

    try:
        tok = LongformerTokenizerFast.from_pretrained(directory)
    except (OSError, ValueError, TypeError):
        return  # an unreadable tokenizer is reported where it is carried over
    ids = {"bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id, "sep_token_id": tok.sep_token_id}
    for key, value in ids.items():
        if config.get(key) is None and value is not None:
            config[key] = value


def load_source(directory: str, source: str = "auto", attention_window=None, max_length: int | None = None,
                position_init: str = "copy", seed: int | None = 0) -> tuple[dict, dict, str, str, dict]:
    """Reads a checkpoint folder and converts it: -> (Longformer config dict, state dict, source, the weights
    file read, the folder's config.json as it was)."""
    import json
    import os

    from tf_longformer import checkpoints

    config_path = os.path.join(directory, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ConversionError(f"Cannot read {config_path!r}: {e}") from None
    if not isinstance(raw, dict):
        raise ConversionError(f"{config_path!r} does not hold a JSON object.")
    state, weights = checkpoints.read_state_dict(directory)
    config, state, source = convert_state(raw, state, source, attention_window, max_length, position_init, seed)
    if source == "bert":
        _token_ids_from_tokenizer(directory, config)
    return config, state, source, weights, raw
