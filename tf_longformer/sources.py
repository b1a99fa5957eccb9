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
  (`dense` + tanh + `out_proj` on the first token, the same computation);
- `electra`: BERT's encoder under `electra.*` (when embedding_size = hidden_size), the generator's MLM head;
- `distilbert`: BERT's computation under other names (`q_lin`, `sa_layer_norm`, ...), no token types, its MLM
  head. The classifiers of these two (dense + gelu, dense + ReLU) are not the Longformer's and are refused;
- `keras-hub`: a KerasHub RoBERTa / XLM-RoBERTa backbone, masked LM or text classifier (an object, or a preset
  folder), read as a RoBERTa by `tf_longformer.kerashub` (needs the `keras-hub` extra).

For the two plain sources the Longformer paper's recipe is applied: the positions are extended to `max_length`
(the learned ones copied over and over, or the new rows drawn at random with `position_init="random"`), and the
global q/k/v projections start as copies of the local ones (`copy_local_to_global`, which also refreshes them
after continued masked-LM pretraining, where they receive no gradient).
"""

from __future__ import annotations

import re

import numpy as np

SOURCES = ("auto", "hf", "allenai", "roberta-long", "roberta", "bert", "electra", "distilbert", "keras-hub")
#: the plain encoders converted with the paper's recipe
PLAIN_SOURCES = ("roberta", "bert", "electra", "distilbert")
#: the sources whose positions start at 0 (BERT's convention), moved to pad_token_id + 1
ZERO_BASED_SOURCES = ("bert", "electra", "distilbert")
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
    if model_type == "electra" or (model_type is None and any(k.startswith("electra.") for k in state)):
        return "electra"
    if model_type == "distilbert" or (model_type is None and any(k.startswith("distilbert.") for k in state)):
        return "distilbert"
    raise ConversionError(
        f"Cannot tell the layout of this checkpoint (model_type {model_type!r}): supported are Longformer, "
        f"the RoBERTa family {ROBERTA_FAMILY}, BERT, ELECTRA, DistilBERT and the allenai and RoBERTa-long layouts; "
        f"give --source (one of {SOURCES[1:]}) if it is one of those.")


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


def bert_state_to_longformer(config: dict, state: dict, mlm_activation: str | None = None,
                             head: str | None = None) -> dict:
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
    activation = mlm_activation or config.get("hidden_act", "gelu")  # BERT's and DistilBERT's MLM head apply it
    if any(k.startswith("lm_head.") for k in out) and activation != "gelu":
        if head not in (None, "masked_lm"):  # another head is asked for: the MLM head stays behind
            return {k: v for k, v in _shift_positions(out, pad).items() if not k.startswith("lm_head.")}
        raise ConversionError(f"hidden_act {activation!r}: the source's MLM head applies it, the Longformer's "
                              "applies gelu; only gelu models convert with their MLM head (convert the encoder "
                              "alone with --head base).")
    return _shift_positions(out, pad)


def _shift_positions(state: dict, pad: int) -> dict:
    """Position row i -> row pad + 1 + i (the rows below are zero, as the padding row of an `nn.Embedding`)."""
    for name in [k for k in state if k.endswith("embeddings.position_embeddings.weight")]:
        table = np.asarray(state[name])
        state[name] = np.concatenate([np.zeros((pad + 1, table.shape[1]), table.dtype), table])
    return state


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


# DistilBERT names -> BERT names (the same computation: post-LN layers, gelu, eps 1e-12)
_DISTILBERT_LAYER = {"attention.q_lin.": "attention.self.query.", "attention.k_lin.": "attention.self.key.",
                     "attention.v_lin.": "attention.self.value.", "attention.out_lin.": "attention.output.dense.",
                     "sa_layer_norm.": "attention.output.LayerNorm.", "ffn.lin1.": "intermediate.dense.",
                     "ffn.lin2.": "output.dense.", "output_layer_norm.": "output.LayerNorm."}
_DISTILBERT_CONFIG = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
                      "hidden_dim": "intermediate_size", "dropout": "hidden_dropout_prob",
                      "attention_dropout": "attention_probs_dropout_prob", "activation": "hidden_act"}
_DISTILBERT_DROPPED = ("qa_dropout", "seq_classif_dropout", "sinusoidal_pos_embds", "tie_weights_")


def _unmapped_head(what: str, head: str | None) -> None:
    if head in (None, "sequence_classification", "multiple_choice"):
        raise ConversionError(f"{what}; the Longformer's classification head is dense + tanh + projection, so this "
                              "head does not convert. Convert the encoder (--head base, or another head class) and "
                              "fine-tune a new head.")


def distilbert_to_bert(config: dict, state: dict, head: str | None = None) -> tuple[dict, dict]:
    """DistilBERT (config, state) in BERT's names: its encoder is BERT's computation with other names, its MLM
    head (`vocab_transform` + activation + `vocab_layer_norm` + tied `vocab_projector`) BERT's; it has no token
    types (one zero row is given) and its classifier (pre_classifier + ReLU) has no Longformer counterpart."""
    config = dict(config)
    for old, new in _DISTILBERT_CONFIG.items():
        if old in config:
            config[new] = config.pop(old)
    for key in _DISTILBERT_DROPPED:
        config.pop(key, None)
    config.update(layer_norm_eps=1e-12, type_vocab_size=1)
    out: dict = {}
    for name, array in state.items():
        bare = name[len("distilbert."):] if name.startswith("distilbert.") else name
        m = re.match(r"transformer\.layer\.(\d+)\.(.*)$", bare)
        if m:
            rest = m.group(2)
            for old, new in _DISTILBERT_LAYER.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            out[f"bert.encoder.layer.{m.group(1)}.{rest}"] = array
        elif bare.startswith("embeddings."):
            out["bert." + bare] = array
        elif bare.startswith(("vocab_transform.", "vocab_layer_norm.", "vocab_projector.")):
            part, p = bare.split(".", 1)
            target = {"vocab_transform": "transform.dense", "vocab_layer_norm": "transform.LayerNorm",
                      "vocab_projector": "decoder"}[part]
            out[f"cls.predictions.{target}.{p}" if (part, p) != ("vocab_projector", "bias")
                else "cls.predictions.bias"] = array
        elif bare.startswith("pre_classifier."):
            _unmapped_head("DistilBERT's classifier applies ReLU after its pre_classifier", head)
        elif bare.startswith("classifier.") and any(k.startswith("pre_classifier.") for k in state):
            continue
        else:
            out[bare] = array
    words = out.get("bert.embeddings.word_embeddings.weight")
    if words is not None:
        out["bert.embeddings.token_type_embeddings.weight"] = np.zeros((1, words.shape[1]), words.dtype)
    return config, out


def electra_to_bert(config: dict, state: dict, head: str | None = None) -> dict:
    """ELECTRA's state in BERT's names: the discriminator's encoder is BERT's; the generator's MLM head
    (dense + gelu + LayerNorm + tied decoder) maps onto the Longformer's; an embedding size other than the hidden
    size (`embeddings_project`) and the classification head (dense + gelu) do not convert."""
    if int(config.get("embedding_size", config.get("hidden_size", 0))) != int(config.get("hidden_size", 0)) or any(
            "embeddings_project." in k for k in state):
        raise ConversionError(f"ELECTRA with embedding_size {config.get('embedding_size')} != hidden_size "
                              f"{config.get('hidden_size')} projects its embeddings; the Longformer has no such "
                              "projection.")
    out: dict = {}
    for name, array in state.items():
        bare = name[len("electra."):] if name.startswith("electra.") else name
        if bare.startswith(("embeddings.", "encoder.")):
            out["bert." + bare] = array
        elif bare.startswith("generator_predictions."):
            rest = bare[len("generator_predictions."):]
            out["cls.predictions.transform." + rest] = array
        elif bare.startswith("generator_lm_head."):
            p = bare[len("generator_lm_head."):]
            out["cls.predictions.decoder.weight" if p == "weight" else "cls.predictions.bias"] = array
        elif bare.startswith("discriminator_predictions."):
            continue  # replaced-token detection: no Longformer head takes it
        elif bare.startswith(("classifier.dense.", "classifier.out_proj.", "sequence_summary.")):
            _unmapped_head("ELECTRA's classification head applies gelu where BERT's pooler applies tanh", head)
        else:
            out[bare] = array
    return out


def convert_state(config: dict, state: dict, source: str = "auto", attention_window=None,
                  max_length: int | None = None, position_init: str = "copy", seed: int | None = 0,
                  head: str | None = None) -> tuple[dict, dict, str]:
    """`head`: the task the result is loaded into (None: not known), where a source's head cannot convert."""
    """(config, state) of any supported layout -> (Hugging Face Longformer config dict, state dict, source)."""
    config = dict(config)
    if source == "auto":
        source = detect_source(config, state)
    if source == "keras-hub":
        raise ConversionError("A KerasHub model is not a state dict: tf_longformer.kerashub.load reads it "
                              "(from_source and tf-longformer convert do).")
    if source not in SOURCES[1:]:
        raise ConversionError(f"--source must be one of {SOURCES}, got {source!r}.")
    if position_init not in POSITION_INITS:
        raise ConversionError(f"position_init (--position-init) must be one of {POSITION_INITS}, got "
                              f"{position_init!r}.")
    if attention_window is not None and source not in PLAIN_SOURCES:
        raise ConversionError(f"--attention-window sets the window of a plain encoder ({', '.join(PLAIN_SOURCES)}); "
                              f"this {source!r} checkpoint is a Longformer, trained with its own windows, and keeps "
                              "them.")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ConversionError(f"max_length must be a positive integer, got {max_length!r}.")
    n_layers = int(config.get("num_hidden_layers", 12))
    # checkpoints converted from the original TensorFlow BERT name LayerNorm's scale and shift gamma / beta
    state = {re.sub(r"(LayerNorm|layer_norm)\.gamma$", r"\1.weight",
                    re.sub(r"(LayerNorm|layer_norm)\.beta$", r"\1.bias", k)): v for k, v in state.items()}
    if source == "distilbert":
        config, state = distilbert_to_bert(config, state, head)
        n_layers = int(config.get("num_hidden_layers", 6))
    elif source == "electra":
        state = electra_to_bert(config, state, head)
        config.pop("embedding_size", None)
        config.pop("summary_type", None)
        config.pop("summary_use_proj", None)
        config.pop("summary_activation", None)
        config.pop("summary_last_dropout", None)
    if source in ZERO_BASED_SOURCES:  # ELECTRA's generator head applies gelu whatever hidden_act says
        state = bert_state_to_longformer(config, state, "gelu" if source == "electra" else None, head)
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


# Longformer config keys a RoBERTa config has no use for
_LONGFORMER_ONLY_KEYS = ("attention_window", "max_predictions_per_seq")


def save_as_roberta(model, directory: str, tokenizer=None) -> str:
    """Writes a Longformer whose computation is RoBERTa's (no token made global, a window covering every input of
    up to `max_position_embeddings - pad_token_id - 1` tokens) as a Hugging Face RoBERTa folder: `config.json`
    (`model_type` "roberta") + `model.safetensors` (`roberta.*` names, the MLM head's tied decoder written out as
    `transformers` does), and the tokenizer when given. The inverse of `convert_state(..., source="roberta")` at
    the model's own length: `from_source(directory, source="roberta", max_length=<that length>,
    attention_window=<the model's>)` gives the same model back. The global projections are left out (RoBERTa has
    none; the conversion copies the local ones). Both files are written whole, then renamed into place."""
    import json
    import os

    from tf_longformer import checkpoints, files

    state = {}
    for name, array in model.hf_state_dict().items():
        if any(f".{kind}_global." in name for kind in _PROJECTIONS):
            continue
        state[re.sub(r"^longformer\.", "roberta.", name) if name.startswith("longformer.") else
                 (name if name.startswith(("lm_head.", "classifier.", "qa_outputs.")) else "roberta." + name)] = array
    if "lm_head.bias" in state:
        words = state["roberta.embeddings.word_embeddings.weight"]
        state["lm_head.decoder.weight"] = np.array(words)
        state["lm_head.decoder.bias"] = np.array(state["lm_head.bias"])
    config = model.config.to_dict()
    for key in _LONGFORMER_ONLY_KEYS:
        config.pop(key, None)
    config["model_type"] = "roberta"
    config["architectures"] = [type(model).hf_architecture.replace("Longformer", "Roberta")]
    os.makedirs(directory, exist_ok=True)
    files.atomic_write_files({
        os.path.join(directory, checkpoints.SAFE_WEIGHTS_NAME): checkpoints.safetensors_bytes(state),
        os.path.join(directory, "config.json"): (json.dumps(config, indent=2) + "\n").encode("utf-8"),
    })
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def _token_ids_from_tokenizer(directory: str, config: dict) -> None:
    """A BERT config names no bos / eos / sep ids, nor do RoBERTa-family configs a sep id (the Longformer's
    defaults, 0 and 2, are other tokens in their vocabularies: CamemBERT's 2 is `</s>NOTUSED`); they are taken from
    the tokenizer beside it (`[CLS]`/`<s>`, `[SEP]`/`</s>`) where the config lacks them. The sep id is what the
    question-answering head's automatic global attention looks for."""
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
                position_init: str = "copy", seed: int | None = 0, head: str | None = None
                ) -> tuple[dict, dict, str, str, dict]:
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
    config, state, source = convert_state(raw, state, source, attention_window, max_length, position_init, seed,
                                          head)
    if source in PLAIN_SOURCES:
        _token_ids_from_tokenizer(directory, config)
    return config, state, source, weights, raw
