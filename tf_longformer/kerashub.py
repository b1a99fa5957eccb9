"""KerasHub RoBERTa / XLM-RoBERTa models as Hugging Face RoBERTa (config, state dict) pairs, for the Longformer
recipe of `tf_longformer.sources` (`source="keras-hub"`).

What converts: a `RobertaBackbone` / `XLMRobertaBackbone` object, a `RobertaMaskedLM` / `XLMRobertaMaskedLM` or
`RobertaTextClassifier` / `XLMRobertaTextClassifier` task object, or a preset folder `save_to_preset` wrote (or a
preset name `keras_hub` can load). The mapping:

- KerasHub's positions start at 0 (row i is position i); the Longformer's (RoBERTa's) start at pad_token_id + 1, so
  row i becomes row pad_token_id + 1 + i, the rows below zero. KerasHub has no token types: one zero row.
- the embeddings' LayerNorm, and per layer the `EinsumDense` q/k/v kernels (hidden, heads, head_dim) and biases
  (heads, head_dim), the output kernel (heads, head_dim, hidden), the FFN and the two LayerNorms (post-LN, gelu,
  eps from the layers), into PyTorch `Linear` layout (out, in);
- the masked-LM head (dense + gelu + LayerNorm + the tied word embeddings + bias) onto `lm_head`;
- the text classifier's `pooled_dense` (tanh) + `logits` on the first token onto the Longformer's classification
  head (the same computation), when its hidden size is the backbone's and it outputs logits (activation None or
  softmax, which the Longformer leaves to the loss).

Refused: other KerasHub classes (the error lists these), an untied embedding, another activation or pre-LN layers.
A KerasHub model positions tokens by index whatever their id; the Longformer by counting the non-pad tokens, which
is the same where padding is at the end (KerasHub's preprocessors put it there).

`keras-hub` is an optional dependency (`pip install "tf-longformer[keras-hub]"`), imported only here.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tf_longformer.sources import ConversionError

BACKBONES = ("RobertaBackbone", "XLMRobertaBackbone")
MASKED_LM = ("RobertaMaskedLM", "XLMRobertaMaskedLM")
CLASSIFIERS = ("RobertaTextClassifier", "XLMRobertaTextClassifier")
SUPPORTED = BACKBONES + MASKED_LM + CLASSIFIERS
INSTALL = 'pip install "tf-longformer[keras-hub]"'


def require_keras_hub():
    """`keras_hub`, or a ConversionError that says how to install it."""
    try:
        import keras_hub
    except ImportError as e:
        raise ConversionError(f"Converting a KerasHub model needs the keras-hub package ({e}); install it with "
                              f"{INSTALL}.") from None
    return keras_hub


def _class_names(obj) -> list[str]:
    return [c.__name__ for c in type(obj).__mro__]


def is_keras_hub_object(obj) -> bool:
    """A KerasHub model object (by its classes' module, without importing keras_hub)."""
    return any(c.__module__.startswith("keras_hub.") for c in type(obj).__mro__)


def is_preset_dir(path) -> bool:
    """A folder `save_to_preset` wrote: `metadata.json` naming a keras_hub version beside a `config.json`."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
        return False
    try:
        with open(os.path.join(path, "metadata.json"), encoding="utf-8") as f:
            return "keras_hub_version" in json.load(f)
    except (OSError, ValueError, TypeError):
        return False


def load_model(obj_or_path):
    """The KerasHub model to convert: the object itself, or the task (when `task.json` is there) or backbone of a
    preset folder or name."""
    if not isinstance(obj_or_path, (str, os.PathLike)):
        return obj_or_path
    keras_hub = require_keras_hub()
    path = os.fspath(obj_or_path)
    cls = keras_hub.models.Backbone
    task_file = os.path.join(path, "task.json")
    if os.path.isfile(task_file):  # KerasHub loads a task through its own class only
        try:
            with open(task_file, encoding="utf-8") as f:
                name = json.load(f)["class_name"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConversionError(f"Cannot read the KerasHub task of {task_file!r} ({e}).") from None
        if name not in SUPPORTED:
            raise ConversionError(f"KerasHub {name} does not convert to a Longformer: supported are "
                                  f"{', '.join(SUPPORTED)} (objects or preset folders).")
        cls = getattr(keras_hub.models, name)
    try:
        return cls.from_preset(path)
    except Exception as e:  # keras_hub raises ValueError / FileNotFoundError / kagglehub errors alike
        raise ConversionError(f"KerasHub could not load the preset {path!r} ({type(e).__name__}: {e}).") from e


def _split(model):
    """(backbone, task kind: None / "masked_lm" / "classifier", task) of a supported KerasHub object."""
    names = _class_names(model)
    if any(n in BACKBONES for n in names):
        return model, None, None
    kind = "masked_lm" if any(n in MASKED_LM for n in names) else "classifier" if any(
        n in CLASSIFIERS for n in names) else None
    backbone = getattr(model, "backbone", None)
    if kind is None or backbone is None or not any(n in BACKBONES for n in _class_names(backbone)):
        raise ConversionError(f"KerasHub {type(model).__name__} does not convert to a Longformer: supported are "
                              f"{', '.join(SUPPORTED)} (objects or preset folders).")
    return backbone, kind, model


def _np(variable) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)


def _dense(layer, prefix: str, out: dict) -> None:
    """A Keras `Dense` / `EinsumDense` as a PyTorch `Linear` (weight (out, in), bias (out,)); EinsumDense kernels
    are flattened on the heads: (hidden, heads, head_dim) in, (heads, head_dim, hidden) out."""
    kernel = _np(layer.kernel)
    if kernel.ndim == 3 and layer.bias is not None and _np(layer.bias).ndim == 2:  # q/k/v: (hidden, heads, dim)
        kernel = kernel.reshape(kernel.shape[0], -1)
    else:
        kernel = kernel.reshape(-1, kernel.shape[-1])
    out[prefix + ".weight"] = kernel.T.copy()
    out[prefix + ".bias"] = _np(layer.bias).reshape(-1)


def _norm(layer, prefix: str, out: dict) -> None:
    out[prefix + ".weight"] = _np(layer.gamma)
    out[prefix + ".bias"] = _np(layer.beta)


def _special_ids(tokenizer) -> dict:
    """pad / bos / eos ids from a KerasHub tokenizer (RoBERTa's 1 / 0 / 2 without one)."""
    ids = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
    if tokenizer is not None:
        for key, attr in (("pad_token_id", "pad_token_id"), ("bos_token_id", "start_token_id"),
                          ("eos_token_id", "end_token_id")):
            value = getattr(tokenizer, attr, None)
            if value is not None:
                ids[key] = int(value)
    ids["sep_token_id"] = ids["eos_token_id"]
    return ids


def tokenizer_of(model):
    """The KerasHub tokenizer that came with a task (its preprocessor's), or None."""
    preprocessor = getattr(model, "preprocessor", None)
    return getattr(preprocessor, "tokenizer", None)


def to_roberta(model, tokenizer=None) -> tuple[dict, dict]:
    """A supported KerasHub object -> (Hugging Face RoBERTa / XLM-R config dict, `roberta.*` state dict)."""
    backbone, kind, task = _split(model)
    ids = _special_ids(tokenizer if tokenizer is not None else tokenizer_of(model))
    pad = ids["pad_token_id"]
    state: dict = {}
    embeddings = backbone.get_layer("embeddings")
    token_embedding = embeddings.token_embedding
    words = _np(token_embedding.embeddings)
    positions = _np(embeddings.position_embedding.position_embeddings)
    state["roberta.embeddings.word_embeddings.weight"] = words
    state["roberta.embeddings.position_embeddings.weight"] = np.concatenate(
        [np.zeros((pad + 1, positions.shape[1]), np.float32), positions])
    state["roberta.embeddings.token_type_embeddings.weight"] = np.zeros((1, words.shape[1]), np.float32)
    embeddings_norm = backbone.get_layer("embeddings_layer_norm")
    _norm(embeddings_norm, "roberta.embeddings.LayerNorm", state)
    eps = float(embeddings_norm.epsilon)
    for i in range(backbone.num_layers):
        layer = backbone.get_layer(f"transformer_layer_{i}")
        activation = getattr(layer.activation, "__name__", str(layer.activation))
        if layer.normalize_first or activation != "gelu":
            raise ConversionError(f"KerasHub transformer_layer_{i} has normalize_first={layer.normalize_first} and "
                                  f"activation {activation!r}; the Longformer's layers are post-LN with gelu.")
        attention = layer._self_attention_layer
        p = f"roberta.encoder.layer.{i}"
        for kind_, dense in (("query", attention.query_dense), ("key", attention.key_dense),
                             ("value", attention.value_dense)):
            _dense(dense, f"{p}.attention.self.{kind_}", state)
        _dense(attention.output_dense, f"{p}.attention.output.dense", state)
        _norm(layer._self_attention_layer_norm, f"{p}.attention.output.LayerNorm", state)
        _dense(layer._feedforward_intermediate_dense, f"{p}.intermediate.dense", state)
        _dense(layer._feedforward_output_dense, f"{p}.output.dense", state)
        _norm(layer._feedforward_layer_norm, f"{p}.output.LayerNorm", state)
    xlmr = "XLMRobertaBackbone" in _class_names(backbone)
    config = {
        "model_type": "xlm-roberta" if xlmr else "roberta",
        "vocab_size": int(backbone.vocabulary_size), "hidden_size": int(backbone.hidden_dim),
        "num_hidden_layers": int(backbone.num_layers), "num_attention_heads": int(backbone.num_heads),
        "intermediate_size": int(backbone.intermediate_dim), "hidden_act": "gelu",
        "hidden_dropout_prob": float(backbone.dropout), "attention_probs_dropout_prob": float(backbone.dropout),
        "max_position_embeddings": int(backbone.max_sequence_length) + pad + 1, "type_vocab_size": 1,
        "layer_norm_eps": eps, "initializer_range": 0.02, **ids,
    }
    family = "XLMRoberta" if xlmr else "Roberta"
    if kind == "masked_lm":
        head = task.get_layer("mlm_head")
        if not getattr(token_embedding, "tie_weights", True) or getattr(head, "token_embedding", None) is None:
            raise ConversionError("This KerasHub masked LM decodes with its own matrix (untied embeddings); the "
                                  "Longformer's MLM head decodes with the word embeddings. Convert its backbone.")
        activation = getattr(head.intermediate_activation, "__name__", str(head.intermediate_activation))
        output = getattr(head.activation, "__name__", "linear") if head.activation is not None else "linear"
        if activation != "gelu" or output != "linear":
            raise ConversionError(f"The KerasHub MLM head applies {activation!r} and outputs {output!r}; the "
                                  "Longformer's applies gelu and outputs logits.")
        _dense(head._intermediate_dense, "lm_head.dense", state)
        _norm(head._intermediate_layer_norm, "lm_head.layer_norm", state)
        state["lm_head.decoder.weight"] = words
        state["lm_head.bias"] = _np(head._bias)
        if abs(float(head._intermediate_layer_norm.epsilon) - eps) > 1e-12:
            raise ConversionError("The KerasHub MLM head's LayerNorm epsilon differs from the encoder's; the "
                                  "Longformer uses one.")
        config["architectures"] = [f"{family}ForMaskedLM"]
    elif kind == "classifier":
        pooled, logits = task.get_layer("pooled_dense"), task.get_layer("logits")
        activation = getattr(logits.activation, "__name__", str(logits.activation))
        if int(pooled.units) != config["hidden_size"] or activation not in ("linear", "softmax"):
            raise ConversionError(
                f"This KerasHub classifier (hidden_dim {pooled.units}, activation {activation!r}) is not the "
                f"Longformer's head (dense of the hidden size {config['hidden_size']} + tanh + a projection to "
                "logits); convert its backbone and fine-tune a new head.")
        _dense(pooled, "classifier.dense", state)
        _dense(logits, "classifier.out_proj", state)
        config["num_labels"] = int(logits.units)
        config["architectures"] = [f"{family}ForSequenceClassification"]
    return config, state


def write_tokenizer(tokenizer, directory: str, model_max_length: int | None = None):
    """The KerasHub tokenizer as a `LongformerTokenizerFast` saved in `directory` (RoBERTa: its vocabulary and
    merges as byte-level BPE; XLM-R: its SentencePiece proto as the Unigram pipeline of `tf_longformer.spm`);
    returns it, or None for a tokenizer of another kind."""
    import tempfile

    from tf_longformer import spm
    from tf_longformer.tokenizer import LongformerTokenizerFast

    names = _class_names(tokenizer)
    kwargs = {} if model_max_length is None else {"model_max_length": int(model_max_length)}
    if "XLMRobertaTokenizer" in names:
        proto = tokenizer.proto
        if isinstance(proto, str):
            with open(proto, "rb") as f:
                proto = f.read()
        backend = spm.unigram_tokenizer(spm.parse_model(bytes(proto)), "xlm-roberta")
        ours = LongformerTokenizerFast(tokenizer_object=backend, **spm.special_tokens("xlm-roberta"), **kwargs)
    elif "RobertaTokenizer" in names:
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
                json.dump(dict(tokenizer.vocabulary), f, ensure_ascii=False)
            with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
                f.write("#version: 0.2\n" + "\n".join(tokenizer.merges) + "\n")
            ours = LongformerTokenizerFast.from_pretrained(tmp, **kwargs)
    else:
        return None
    ours.save_pretrained(directory)
    return ours


def load(obj_or_path, attention_window=None, max_length: int | None = None, position_init: str = "copy",
         seed: int | None = 0, head: str | None = None):
    """A KerasHub object, preset folder or name -> (Longformer config dict, state dict, "keras-hub", a description
    of what was read, the RoBERTa config as read, the KerasHub tokenizer or None)."""
    from tf_longformer.sources import convert_state

    model = load_model(obj_or_path)
    tokenizer = tokenizer_of(model)
    named = isinstance(obj_or_path, (str, os.PathLike))
    if tokenizer is None and named and (not os.path.isdir(obj_or_path) or os.path.isfile(
            os.path.join(obj_or_path, "tokenizer.json"))):  # a backbone's preset (a name, or a folder with one)
        tokenizer = require_keras_hub().tokenizers.Tokenizer.from_preset(os.fspath(obj_or_path))
    raw, state = to_roberta(model, tokenizer)
    config, state, _ = convert_state(raw, state, "roberta", attention_window, max_length, position_init, seed, head)
    what = os.fspath(obj_or_path) if named else f"<KerasHub {type(model).__name__}>"
    return config, state, "keras-hub", what, raw, tokenizer
