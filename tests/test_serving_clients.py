"""The REST and gRPC clients of export/clients, against export/standin_server.py.

TF Serving itself cannot be installed here; the stand-in implements its predict contract (REST JSON row and
columnar formats, errors as {"error": ...}; gRPC PredictionService/Predict with the official
tensorflow-serving-api protos, strict dtypes) and is backed by the exported SavedModels of test_export.py,
configured from export/models.config. The clients tokenise text with the export's own tokenizer, call the server
and decode answers; every number is compared with the Keras model, every answer with a brute-force decode of the
Keras model's outputs.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis")

import tensorflow as tf  # noqa: E402

import export_harness as E  # noqa: E402  (the shared exports, cases and Keras expectations)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "export"))
sys.path.insert(0, os.path.join(ROOT, "export", "clients"))

import grpc_client  # noqa: E402
import rest_client  # noqa: E402
import serving_client  # noqa: E402
import standin_server  # noqa: E402

# The names export/models.config serves the six heads under.
SERVED = {
    "longformer-qa": "question_answering",
    "longformer-classifier": "sequence_classification",
    "longformer-ner": "token_classification",
    "longformer-fill-mask": "masked_lm",
    "longformer-multiple-choice": "multiple_choice",
    "longformer-encoder": "base",
}
NAME = {task: name for name, task in SERVED.items()}
CONTEXT = ("Once upon a time, in a small village by the sea, there lived an old fisherman who told stories to the "
           "children every evening. They would sit on the warm sand and listen until the stars came out.")
TEXTS = ["The Longformer is a transformer model for long documents.",
         "Il était une fois une élève très curieuse qui aimait la musique et le théâtre."]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return E.export_all_heads(tmp_path_factory.getbasetemp() / "shared-exports")


@pytest.fixture(scope="module")
def server(exports, tmp_path_factory):
    """The stand-in, configured by export/models.config with its /models/<name> paths pointed at the exports."""
    text = open(os.path.join(ROOT, "export", "models.config"), encoding="utf-8").read()
    for name, task in SERVED.items():
        text = text.replace(f'"/models/{name}"', json.dumps(os.path.dirname(exports[task][1])))
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text(text)
    s = standin_server.StandInServer.from_config_file(str(config))
    s.rest_port = s.start_rest()
    s.grpc_port = s.start_grpc()
    yield s
    s.stop()


def transport(server, kind, task, **kwargs):
    name = NAME[task]
    if kind.startswith("rest"):
        return rest_client.RestTransport(f"http://127.0.0.1:{server.rest_port}", name,
                                         request_format="row" if kind == "rest-row" else "columnar", **kwargs)
    return grpc_client.GrpcTransport(f"127.0.0.1:{server.grpc_port}", name, int64=kind == "grpc-int64", **kwargs)


def client(server, kind, task, exports):
    return serving_client.LongformerClient(transport(server, kind, task), exports[task][1])


def keras_outputs(exports, task, enc_inputs, signature="auto_global"):
    model, _ = exports[task]
    x = {k: np.asarray(enc_inputs[k]).astype(np.int32) for k in ("input_ids", "attention_mask")}
    x["global_attention_mask"] = np.asarray(enc_inputs.get("global_attention_mask", np.zeros_like(x["input_ids"])),
                                            np.int32)
    return E.keras_expected(model, task, signature, x)


def test_models_config_is_a_valid_model_server_config():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(open(os.path.join(ROOT, "export", "models.config")).read(),
                               model_server_config_pb2.ModelServerConfig())
    entries = config.model_config_list.config
    assert sorted(c.name for c in entries) == sorted(SERVED)
    for c in entries:
        assert c.base_path == f"/models/{c.name}" and c.model_platform == "tensorflow"


# ----------------------------------------------------------------------------------------- numbers
INPUT_CASES = {
    "question_answering": lambda tok: tok(["Who told stories?", "Where did they sit?"], [CONTEXT, CONTEXT[:90]],
                                          padding=True, return_tensors="np"),
    "multiple_choice": lambda tok: {k: v[None] for k, v in tok(["Who told stories?"] * 3,
                                                               ["a fisherman", "the stars", "nobody at all, ever"],
                                                               padding=True, return_tensors="np").items()},
}


def encoded(task, tok):
    if task in INPUT_CASES:
        return dict(INPUT_CASES[task](tok))
    return dict(tok(TEXTS + [CONTEXT], padding=True, return_tensors="np"))


# int64 twins are exported (in test_export.py) for the fully exported heads only.
TRANSPORT_CASES = [(task, kind) for task in E.HEADS for kind in ("rest-columnar", "rest-row", "grpc", "grpc-int64")
                   if kind != "grpc-int64" or task in E.EXTRAS_HEADS]


@pytest.mark.parametrize("task, kind", TRANSPORT_CASES)
def test_transports_return_the_keras_numbers(server, exports, task, kind):
    c = client(server, kind, task, exports)
    enc = encoded(task, c.tokenizer)
    assert enc["input_ids"].shape[-1] not in (8, 64, 128)  # not a warm-up or limit length
    got = c.predict({k: enc[k] for k in ("input_ids", "attention_mask")})
    want = keras_outputs(exports, task, enc)
    E.assert_outputs_equal(got, want, f"{kind} {task}", "auto_global")
    assert set(got) == set(c.assets.outputs_of("auto_global"))


@pytest.mark.parametrize("kind", ["rest-columnar", "grpc"])
def test_explicit_global_attention_through_serving_default(server, exports, kind):
    task = "token_classification"
    c = client(server, kind, task, exports)
    enc = encoded(task, c.tokenizer)
    glob = np.zeros_like(enc["input_ids"])
    glob[:, [0, 7]] = 1
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "global_attention_mask": glob}
    got = c.predict(inputs, signature="serving_default")
    want = keras_outputs(exports, task, inputs, signature="serving_default")
    E.assert_outputs_equal(got, want, kind, "serving_default")


# ----------------------------------------------------------------------------------------- answers
def best_span(start, end, context_positions, max_len=30):
    best, arg = -np.inf, None
    for s in context_positions:
        for e in context_positions:
            if s <= e < s + max_len and start[s] + end[e] > best:
                best, arg = start[s] + end[e], (s, e)
    return arg


@pytest.mark.parametrize("kind", ["rest-columnar", "grpc"])
def test_answer(server, exports, kind):
    c = client(server, kind, "question_answering", exports)
    question = "Who told stories to the children?"
    result = c.answer(question, CONTEXT)
    enc = c.tokenizer([question], [CONTEXT], return_offsets_mapping=True, return_tensors="np")
    want = keras_outputs(exports, "question_answering", enc)
    positions = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
    s, e = best_span(want["start_logits"][0], want["end_logits"][0], positions)
    offsets = enc["offset_mapping"][0]
    assert (result["start_token"], result["end_token"]) == (s, e)
    assert result["answer"] == CONTEXT[offsets[s][0]:offsets[e][1]] and result["answer"]
    assert result["start"] == offsets[s][0] and result["end"] == offsets[e][1]
    score = want["start_probabilities"][0, s] * want["end_probabilities"][0, e]
    assert abs(result["score"] - score) <= 1e-6


@pytest.mark.parametrize("kind", ["rest-row", "grpc"])
def test_classify(server, exports, kind):
    c = client(server, kind, "sequence_classification", exports)
    results = c.classify(TEXTS)
    want = keras_outputs(exports, "sequence_classification", c.tokenizer(TEXTS, padding=True, return_tensors="np"))
    probs = E.softmax(want["logits"])
    for r, p in zip(results, probs):
        assert r["label"] == E.LABELS[int(np.argmax(p))]
        assert sorted(r["scores"]) == sorted(E.LABELS.values())
        assert max(abs(r["scores"][E.LABELS[i]] - p[i]) for i in range(3)) <= 1e-5
    assert results[0]["scores"] != results[1]["scores"]


@pytest.mark.parametrize("kind", ["rest-columnar", "grpc"])
def test_tag(server, exports, kind):
    c = client(server, kind, "token_classification", exports)
    results = c.tag(TEXTS)
    enc = c.tokenizer(TEXTS, padding=True, return_tensors="np", return_offsets_mapping=True)
    want = keras_outputs(exports, "token_classification", enc)
    for b, (text, rows) in enumerate(zip(TEXTS, results)):
        real = [i for i in range(1, int(enc["attention_mask"][b].sum()) - 1)]  # no <s>, </s>, padding
        assert len(rows) == len(real)
        for i, row in zip(real, rows):
            start, end = (int(v) for v in enc["offset_mapping"][b, i])
            assert (row["start"], row["end"], row["word"]) == (start, end, text[start:end])
            assert row["label"] == E.LABELS[int(np.argmax(want["logits"][b, i]))]
    assert "".join(r["word"] for r in results[0]).replace(" ", "") == TEXTS[0].replace(" ", "")


@pytest.mark.parametrize("kind", ["rest-columnar", "grpc"])
def test_fill_mask(server, exports, kind):
    c = client(server, kind, "masked_lm", exports)
    texts = ["The old <mask> told stories.", "They sat on the <mask> sand until the <mask> came out."]
    results = c.fill_mask(texts, top_k=3)
    enc = c.tokenizer(texts, padding=True, return_tensors="np")
    probs = E.softmax(keras_outputs(exports, "masked_lm", enc)["logits"])
    assert [len(r) for r in results] == [1, 2]
    for b, per_text in enumerate(results):
        positions = np.flatnonzero(enc["input_ids"][b] == c.tokenizer.mask_token_id)
        for pos, options in zip(positions, per_text):
            want_ids = np.argsort(-probs[b, pos], kind="stable")[:3]
            assert [o["token_id"] for o in options] == want_ids.tolist()
            assert max(abs(o["score"] - probs[b, pos, i]) for o, i in zip(options, want_ids)) <= 1e-5
            assert options[0]["token"] == c.tokenizer.decode([int(want_ids[0])])


@pytest.mark.parametrize("kind", ["rest-columnar", "grpc", "grpc-int64"])
def test_choose(server, exports, kind):
    c = client(server, kind, "multiple_choice", exports)
    choices = ["a fisherman", "the stars", "nobody at all, ever"]
    result = c.choose("Who told stories?", choices)
    enc = {k: v[None] for k, v in c.tokenizer(["Who told stories?"] * 3, choices, padding=True,
                                              return_tensors="np").items()}
    p = E.softmax(keras_outputs(exports, "multiple_choice", enc)["logits"])[0]
    assert result["choice"] == int(np.argmax(p)) and result["text"] == choices[result["choice"]]
    assert max(abs(a - b) for a, b in zip(result["scores"], p)) <= 1e-5


@pytest.mark.parametrize("kind", ["rest-row", "grpc"])
def test_embed(server, exports, kind):
    c = client(server, kind, "base", exports)
    results = c.embed(TEXTS)
    enc = c.tokenizer(TEXTS, padding=True, return_tensors="np")
    want = keras_outputs(exports, "base", enc)
    mask = enc["attention_mask"][..., None]
    mean = (want["last_hidden_state"] * mask).sum(1) / mask.sum(1)
    for b, r in enumerate(results):
        assert np.max(np.abs(np.asarray(r["pooler_output"]) - want["pooler_output"][b])) <= 1e-5
        assert np.max(np.abs(np.asarray(r["mean_pooled"]) - mean[b])) <= 1e-5


def test_command_line_clients(server, exports, capsys):
    assets = exports["question_answering"][1]
    common = ["--model", NAME["question_answering"], "--assets", assets, "--question", "Who told stories?",
              "--context", CONTEXT]
    assert rest_client.main(["--server", f"127.0.0.1:{server.rest_port}"] + common) == 0
    from_rest = json.loads(capsys.readouterr().out)
    assert grpc_client.main(["--server", f"127.0.0.1:{server.grpc_port}", "--int64"] + common) == 0
    from_grpc = json.loads(capsys.readouterr().out)
    assert from_rest["answer"] == from_grpc["answer"] and from_rest["answer"]
    assert abs(from_rest["score"] - from_grpc["score"]) <= 1e-6
    # A classifier, with a batch of texts and an explicit version.
    assert rest_client.main(["--server", f"127.0.0.1:{server.rest_port}", "--model", NAME["sequence_classification"],
                             "--version", "1", "--assets", exports["sequence_classification"][1],
                             "--text", TEXTS[0], "--text", TEXTS[1]]) == 0
    assert [r["label"] for r in json.loads(capsys.readouterr().out)] == \
        [r["label"] for r in client(server, "grpc", "sequence_classification", exports).classify(TEXTS)]
    # A question-answering export asked without a context: a clear message, exit status 1.
    assert rest_client.main(["--server", f"127.0.0.1:{server.rest_port}"] + common[:6]) == 1
    assert "needs --question and --context" in capsys.readouterr().out


# ------------------------------------------------------------------------------ the contract's edges
def test_errors_come_back_to_the_client(server, exports):
    long = {"input_ids": np.full((1, 129), 5), "attention_mask": np.ones((1, 129), np.int64)}
    for kind in ("rest-columnar", "rest-row", "grpc"):
        with pytest.raises(serving_client.ServingError, match="at most 128"):
            transport(server, kind, "sequence_classification").predict(long, "auto_global", ["logits"])
    with pytest.raises(serving_client.ServingError, match="HTTP 404: Servable not found"):
        rest_client.RestTransport(f"127.0.0.1:{server.rest_port}", "nope").predict(long, "auto_global")
    with pytest.raises(serving_client.ServingError, match="NOT_FOUND"):
        grpc_client.GrpcTransport(f"127.0.0.1:{server.grpc_port}", "nope").predict(long, "auto_global")
    with pytest.raises(serving_client.ServingError, match="HTTP 404"):
        transport(server, "rest-columnar", "base", version=7).predict(long, "auto_global")
    with pytest.raises(serving_client.ServingError, match='"attentions" not found'):
        transport(server, "rest-columnar", "base").predict(long, "attentions")
    # gRPC does not convert dtypes (as TF Serving): int64 to an int32 signature is refused.
    t = transport(server, "grpc", "base")
    request = t.request({"input_ids": np.ones((1, 4), np.int32), "attention_mask": np.ones((1, 4), np.int32)},
                        "auto_global")
    request.inputs["input_ids"].CopyFrom(grpc_client.to_tensor_proto(np.ones((1, 4), np.int64)))
    with pytest.raises(Exception, match="Expects arg.* to be int32 but int64 is provided"):
        t.stub.Predict(request)
    # A client asking a task the export does not do.
    with pytest.raises(ValueError, match="sequence_classification model; `answer` needs a question_answering"):
        client(server, "grpc", "sequence_classification", exports).answer("q", "c")


def test_status_and_metadata(server):
    t = transport(server, "rest-columnar", "question_answering")
    assert t.status()["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]
    sigs = t.metadata()["metadata"]["signature_def"]["signature_def"]
    inputs = sigs["serving_default"]["inputs"]
    assert sorted(inputs) == ["attention_mask", "global_attention_mask", "input_ids"]
    assert inputs["input_ids"]["dtype"] == "DT_INT32"
    assert [d["size"] for d in inputs["input_ids"]["tensor_shape"]["dim"]] == ["-1", "-1"]
    assert sorted(sigs["auto_global"]["outputs"]) == ["end_logits", "end_probabilities", "start_logits",
                                                      "start_probabilities"]


def test_grpc_output_filter_and_version(server):
    t = transport(server, "grpc", "question_answering", version=1)
    request = t.request({"input_ids": np.array([[0, 7, 2, 2, 9, 2]]), "attention_mask": np.ones((1, 6), np.int64)},
                        "auto_global")
    request.output_filter.append("start_logits")
    response = t.stub.Predict(request)
    assert list(response.outputs) == ["start_logits"] and response.model_spec.version.value == 1


def test_tensor_proto_conversions():
    """Values as `tensor_content` (what servers usually send) and as typed lists (what some send)."""
    for array in (np.arange(6, dtype=np.int32).reshape(2, 3), np.arange(4, dtype=np.int64),
                  np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 2)):
        proto = grpc_client.to_tensor_proto(array)
        np.testing.assert_array_equal(tf.make_ndarray(proto), array)
        np.testing.assert_array_equal(grpc_client.from_tensor_proto(proto), array)
    listed = tf.make_tensor_proto([[1.5, 2.5]], dtype=tf.float32)
    listed.ClearField("tensor_content")
    listed.float_val.extend([1.5, 2.5])
    np.testing.assert_array_equal(grpc_client.from_tensor_proto(listed), [[1.5, 2.5]])
    splat = tf.make_tensor_proto(7, dtype=tf.int32, shape=[2, 2])  # one value for all
    np.testing.assert_array_equal(grpc_client.from_tensor_proto(splat), np.full((2, 2), 7))
    with pytest.raises(TypeError, match="float64"):
        grpc_client.to_tensor_proto(np.zeros(2))


def test_export_assets_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tf_longformer_export.json"):
        serving_client.ExportAssets(tmp_path)
