"""`LongformerConfig`: the Hugging Face `config.json` of a Longformer, validated."""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any

from tf_longformer.files import atomic_write_bytes, resolve_checkpoint_dir

CONFIG_NAME = "config.json"

# Documented defaults of the Hugging Face LongformerConfig (transformers 4.x).
_DEFAULTS: dict[str, Any] = {
    "attention_window": 512,
    "sep_token_id": 2,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "onnx_export": False,
    "problem_type": None,
}

# Fields of this library that the Hugging Face config does not have. `to_dict()` writes them only when they differ
# from these defaults, so a config.json stays exactly what `transformers` writes.
TF_FIELDS: dict[str, Any] = {
    "gradient_checkpointing": False,
    "global_buckets": None,
    "max_predictions_per_seq": None,
}

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


INT32_LIMIT = 2**31 - 1  # ids, positions and sizes are int32 in the graphs
MAX_LABELS = 2**20  # a bound on `num_labels`, so that an untrusted config.json cannot exhaust memory


def _positive_int(name: str, value: Any, limit: int = INT32_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if value > limit:
        raise ValueError(f"`{name}` must be at most {limit}, got {value!r}.")
    return value


class LongformerConfig:
    """Configuration of a Longformer, compatible with the Hugging Face `config.json`.

    Every documented parameter of `transformers.LongformerConfig` is accepted with the documented default
    (`vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size`,
    `hidden_act`, `hidden_dropout_prob`, `attention_probs_dropout_prob`, `max_position_embeddings`,
    `type_vocab_size`, `initializer_range`, `layer_norm_eps`, the token ids, `num_labels` / `id2label` /
    `label2id`, `problem_type`). `attention_window` is the FULL window (each token sees
    `attention_window // 2` tokens on each side); an int applies to every layer, a list gives one even,
    positive value per layer. Unknown keys are kept and written back by `to_dict()` / `save_pretrained()`.

    Fields of this library (not in the Hugging Face config; written to config.json only when set):
      gradient_checkpointing: recompute each layer's activations in the backward pass (less memory for long
          inputs, about one more forward pass of compute). Default False.
      global_buckets: global-token counts, smallest first. Under XLA, each is a static number of slots the
          attention layers compile a path for (a batch with more global tokens than the largest bucket takes
          the full-length path). Elsewhere the slots are the batch's own count, and the buckets only mark where
          the global rows switch from folded to unfolded projections. Default None: the layers' own default
          (`tf_longformer.layers.attention.DEFAULT_GLOBAL_BUCKETS`).
      max_predictions_per_seq: masked LM under XLA only: the static number of labelled positions per row whose
          vocabulary logits a `fit` / `evaluate` step computes (outside XLA the step takes the batch's own
          largest count, exactly). A row with more labels makes the step's loss NaN, never a silently dropped
          label. Default None: every position (exact, no saving under XLA).

    >>> cfg = LongformerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, attention_window=[4, 8])
    >>> cfg.attention_windows
    [4, 8]
    """

    model_type = "longformer"

    def __init__(self, **kwargs: Any):
        values = dict(_DEFAULTS)
        values.update(TF_FIELDS)
        values.update(kwargs)
        id2label = values.pop("id2label", None)
        label2id = values.pop("label2id", None)
        num_labels = values.pop("num_labels", None)
        for key, value in values.items():
            setattr(self, key, value)
        if id2label is not None:
            if not isinstance(id2label, dict) or not id2label:
                raise ValueError(f"`id2label` must be a non-empty mapping of label ids to names, got {id2label!r}.")
            try:
                self.id2label = {int(k): v for k, v in id2label.items()}
            except (TypeError, ValueError):
                raise ValueError(f"`id2label` keys must be integer label ids, got {list(id2label)!r}.") from None
        else:
            n = 2 if num_labels is None else _positive_int("num_labels", num_labels, MAX_LABELS)
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
        if num_labels is not None and num_labels != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(_positive_int("num_labels", num_labels, MAX_LABELS))}
        if label2id is not None and len(label2id) == len(self.id2label):
            self.label2id = {k: int(v) for k, v in label2id.items()}
        else:
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        n = _positive_int("num_labels", n, MAX_LABELS)
        if n != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def attention_windows(self) -> list[int]:
        """One full window per layer."""
        w = self.attention_window
        return [w] * self.num_hidden_layers if isinstance(w, int) else list(w)

    @property
    def window_multiple(self) -> int:
        """The length the models pad every input to a multiple of: each layer works in blocks of its one-sided
        window (`attention_window // 2`), so this is the least common multiple of those."""
        return math.lcm(*[w // 2 for w in self.attention_windows])

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_sequence_length(self) -> int:
        """The longest input the position embeddings allow (RoBERTa positions start at pad_token_id + 1)."""
        return self.max_position_embeddings - self.pad_token_id - 1

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            _positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        w = self.attention_window
        if isinstance(w, (list, tuple)):
            if len(w) != self.num_hidden_layers:
                raise ValueError(
                    f"`attention_window` has {len(w)} entries {list(w)} but the model has "
                    f"{self.num_hidden_layers} layers (`num_hidden_layers`); give one window per layer or one int."
                )
            self.attention_window = list(w)
            windows = list(w)
        else:
            windows = [w]
        for value in windows:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT32_LIMIT or value % 2:
                raise ValueError(
                    f"`attention_window` values must be positive even integers (the full window, both sides), "
                    f"got {value!r} in {w!r}."
                )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {p!r}.")
        r = self.initializer_range
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < math.inf:
            raise ValueError(f"`initializer_range` must be a finite number >= 0, got {r!r}.")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(f"`layer_norm_eps` must be a positive number, got {self.layer_norm_eps!r}.")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"`hidden_act` {self.hidden_act!r} is not supported; use one of {SUPPORTED_ACTIVATIONS}.")
        if not isinstance(self.gradient_checkpointing, bool):
            raise ValueError(f"`gradient_checkpointing` must be True or False, got {self.gradient_checkpointing!r}.")
        m = self.max_predictions_per_seq
        if m is not None:
            _positive_int("max_predictions_per_seq", m)
        b = self.global_buckets
        if b is not None:
            if not isinstance(b, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
                                                       for v in b) or list(b) != sorted(set(b)):
                raise ValueError(f"`global_buckets` must be None or increasing positive integers, got {b!r}.")
            self.global_buckets = list(b)
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"`problem_type` must be one of {PROBLEM_TYPES}, got {self.problem_type!r}.")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < self.vocab_size):
                raise ValueError(f"`{name}` must be an id in [0, vocab_size={self.vocab_size}), got {v!r}.")
        if self.max_sequence_length < 1:
            raise ValueError(
                f"`max_position_embeddings` ({self.max_position_embeddings}) leaves no room for a token after the "
                f"RoBERTa position offset (pad_token_id + 1 = {self.pad_token_id + 1})."
            )

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items()
               if not k.startswith("_") and not (k in TF_FIELDS and v == TF_FIELDS[k])}
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["model_type"] = self.model_type
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> "LongformerConfig":
        data = dict(data)
        data.pop("model_type", None)
        data.update(overrides)
        return cls(**data)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> "LongformerConfig":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No config file at {path!r}.")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path!r} is not a valid JSON config file: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path!r} must hold a JSON object, got {type(data).__name__}.")
        model_type = data.get("model_type", "longformer")
        if model_type != "longformer":
            raise ValueError(f"{path!r} describes a {model_type!r} model, not a 'longformer'.")
        return cls.from_dict(data, **overrides)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> "LongformerConfig":
        directory = resolve_checkpoint_dir(path)
        return cls.from_json_file(os.path.join(directory, CONFIG_NAME), **overrides)

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, CONFIG_NAME)
        atomic_write_bytes(path, self.to_json_string().encode("utf-8"))
        return path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LongformerConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"LongformerConfig {self.to_json_string()}"
