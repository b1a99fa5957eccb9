import json

import pytest

from tf_longformer import LongformerConfig


def test_documented_defaults():
    c = LongformerConfig()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads) == (30522, 768, 12, 12)
    assert (c.intermediate_size, c.hidden_act, c.max_position_embeddings, c.type_vocab_size) == (3072, "gelu", 512, 2)
    assert (c.attention_window, c.pad_token_id, c.bos_token_id, c.eos_token_id, c.sep_token_id) == (512, 1, 0, 2, 2)
    assert (c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.layer_norm_eps) == (0.1, 0.1, 1e-12)
    assert c.initializer_range == 0.02 and c.num_labels == 2 and c.onnx_export is False
    assert c.attention_windows == [512] * 12 and c.max_sequence_length == 510


def test_json_round_trip_keeps_unknown_keys(tmp_path):
    c = LongformerConfig(attention_window=[4, 6], num_hidden_layers=2, num_labels=3, my_key={"a": 1})
    c.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["my_key"] == {"a": 1} and data["model_type"] == "longformer" and data["attention_window"] == [4, 6]
    again = LongformerConfig.from_pretrained(tmp_path)
    assert again == c and again.num_labels == 3 and again.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def test_real_allenai_config_reads():
    data = {"attention_window": [512] * 12, "hidden_size": 768, "num_hidden_layers": 12, "vocab_size": 50265,
            "max_position_embeddings": 4098, "type_vocab_size": 1, "layer_norm_eps": 1e-05,
            "architectures": ["LongformerForMaskedLM"], "model_type": "longformer", "ignore_attention_mask": False}
    c = LongformerConfig.from_dict(data)
    assert c.max_sequence_length == 4096 and c.architectures == ["LongformerForMaskedLM"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attention_window": 5}, "positive even integers.*5"),
        ({"attention_window": 0}, "positive even integers.*0"),
        ({"attention_window": -4}, "positive even integers.*-4"),
        ({"attention_window": [4, 6], "num_hidden_layers": 3}, "2 entries.*3 layers"),
        ({"attention_window": [4, 7], "num_hidden_layers": 2}, "positive even integers.*7"),
        ({"hidden_size": 30, "num_attention_heads": 4}, r"`hidden_size` \(30\).*divisible.*\(4\)"),
        ({"hidden_act": "magic"}, "'magic' is not supported"),
        ({"hidden_dropout_prob": 1.5}, r"\[0, 1\).*1.5"),
        ({"num_hidden_layers": 0}, "positive integer, got 0"),
        ({"pad_token_id": 99999}, "pad_token_id.*99999"),
    ],
)
def test_bad_configs_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LongformerConfig(**kwargs)


def test_corrupt_config_file_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="config.json.*not a valid JSON"):
        LongformerConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="'bert' model"):
        LongformerConfig.from_pretrained(tmp_path)
