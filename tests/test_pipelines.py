"""Pipelines, checked against the model's own logits on small random checkpoints."""

import io
import os
import warnings

import numpy as np
import pytest

import tf_longformer as T
from tf_longformer.pipelines import _Progress, _windows, group_entities, pipeline

TEXT = ("The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is the capital "
        "of Germany. Rivers run to the sea; mountains rise over the plains. ")
LABELS = {0: "O", 1: "B-LOC", 2: "I-LOC", 3: "B-PER", 4: "I-PER"}


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def tok():
    return T.LongformerTokenizerFast.train_new_from_iterator([TEXT] * 10, vocab_size=420)


@pytest.fixture(scope="module")
def cfg(tok):
    # windows 4 and 8 per layer: every input beyond a few tokens uses the band, not a dense shortcut
    return T.LongformerConfig(vocab_size=len(tok) + 3, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, attention_window=[4, 8], max_position_embeddings=130,
                              type_vocab_size=1, id2label=LABELS, layer_norm_eps=1e-5)


@pytest.fixture(scope="module")
def models(cfg):
    import keras

    keras.utils.set_random_seed(7)
    out = {cls: cls(cfg) for cls in (T.TFLongformerForMaskedLM, T.TFLongformerForQuestionAnswering,
                                     T.TFLongformerForSequenceClassification, T.TFLongformerForTokenClassification)}
    for m in out.values():
        m.build()
    return out


# ------------------------------------------------------------------------------------------------ fill-mask
def test_fill_mask_top_tokens_are_the_logits_argmax(tok, models):
    model = models[T.TFLongformerForMaskedLM]
    fill = pipeline("fill-mask", model=model, tokenizer=tok)
    text = "Paris is the <mask> of France."
    got = fill(text, top_k=4)
    ids = tok(text)["input_ids"]
    pos = ids.index(tok.mask_token_id)
    logits = model(np.array([ids])).logits.numpy()[0, pos, :len(tok)]
    probs = softmax(model(np.array([ids])).logits.numpy()[0, pos])
    assert [r["token"] for r in got] == list(np.argsort(-logits, kind="stable")[:4])
    np.testing.assert_allclose([r["score"] for r in got], probs[[r["token"] for r in got]], rtol=1e-4)
    assert got[0]["token_str"] == tok.decode([got[0]["token"]])
    assert got[0]["sequence"] == tok.decode([got[0]["token"] if i == pos else t for i, t in enumerate(ids)],
                                            skip_special_tokens=True)


def test_fill_mask_several_masks_batches_and_targets(tok, models):
    model = models[T.TFLongformerForMaskedLM]
    fill = pipeline("fill-mask", model=model, tokenizer=tok, batch_size=2)
    texts = ["<mask> is the capital of <mask>.", "The quick brown <mask> jumps over the lazy dog. " * 3, "a <mask>"]
    batched = fill(texts, top_k=3)
    singles = [fill(t, top_k=3) for t in texts]
    assert len(batched[0]) == 2 and len(batched[0][0]) == 3  # two masks, three candidates each
    for b, s in zip(batched, singles):
        flat_b = [r for rows in (b if isinstance(b[0], list) else [b]) for r in rows]
        flat_s = [r for rows in (s if isinstance(s[0], list) else [s]) for r in rows]
        assert [r["token"] for r in flat_b] == [r["token"] for r in flat_s]
        np.testing.assert_allclose([r["score"] for r in flat_b], [r["score"] for r in flat_s], rtol=1e-4, atol=1e-7)
    targets = [" fox", " dog", " capital"]
    got = fill("The quick brown <mask> jumps.", targets=targets)
    ids = tok("The quick brown <mask> jumps.")["input_ids"]
    probs = softmax(model(np.array([ids])).logits.numpy()[0, ids.index(tok.mask_token_id)])
    target_ids = [tok.convert_tokens_to_ids(tok.tokenize(t))[0] for t in targets]
    assert sorted(r["token"] for r in got) == sorted(target_ids)
    assert [r["token"] for r in got] == sorted(target_ids, key=lambda i: -probs[i])


def test_fill_mask_errors(tok, models):
    fill = pipeline("fill-mask", model=models[T.TFLongformerForMaskedLM], tokenizer=tok)
    with pytest.raises(ValueError, match="No mask token"):
        fill("no mask here")
    with pytest.raises(ValueError, match="fill-mask scores single tokens"):
        fill("a <mask>", targets=["quickbrownfoxjumps"])
    with pytest.raises(ValueError, match="reads at most 128"):
        fill(TEXT * 8 + "<mask>")
    with pytest.raises(ValueError, match="top_k"):
        fill("a <mask>", top_k=0)


# ---------------------------------------------------------------------------------------- question answering
def best_span(start_logits, end_logits, lo, hi, max_len):
    """Brute force: the (s, e) inside [lo, hi) with s <= e < s + max_len maximising start + end logits."""
    best, arg = -np.inf, None
    for s in range(lo, hi):
        for e in range(s, min(hi, s + max_len)):
            if start_logits[s] + end_logits[e] > best:
                best, arg = start_logits[s] + end_logits[e], (s, e)
    return arg


def test_qa_short_context_matches_logits_and_offsets(tok, models):
    model = models[T.TFLongformerForQuestionAnswering]
    qa = pipeline("question-answering", model=model, tokenizer=tok)
    question, context = "What is the capital of France?", TEXT
    got = qa(question=question, context=context, max_answer_len=6)
    enc = tok(question, context, return_offsets_mapping=True)
    ids = enc["input_ids"]
    out = model(np.array([ids]))  # the model's own automatic global attention on the question
    s_log, e_log = out.start_logits.numpy()[0], out.end_logits.numpy()[0]
    seq = enc.sequence_ids(0)
    lo = seq.index(1)
    hi = len(seq) - 1
    s, e = best_span(s_log, e_log, lo, hi, 6)
    offsets = enc["offset_mapping"]
    assert (got["start"], got["end"]) == (offsets[s][0], offsets[e][1])
    assert got["answer"] == context[got["start"]:got["end"]]
    ps = softmax(np.where(np.arange(len(ids)) >= lo, s_log, -np.inf)[:hi])
    pe = softmax(np.where(np.arange(len(ids)) >= lo, e_log, -np.inf)[:hi])
    np.testing.assert_allclose(got["score"], ps[s] * pe[e], rtol=1e-4)
    # the same through the other input forms, and top_k in descending order
    assert qa({"question": question, "context": context}, max_answer_len=6) == pytest.approx(got)
    top = qa([{"question": question, "context": context}], top_k=5)[0]
    assert len(top) == 5 and [a["score"] for a in top] == sorted((a["score"] for a in top), reverse=True)
    assert all(a["answer"] == context[a["start"]:a["end"]] for a in top)


def test_qa_long_context_uses_overlapping_windows(tok, models):
    model = models[T.TFLongformerForQuestionAnswering]
    question, context = "Which river runs to the sea?", TEXT * 3
    q = tok(question, add_special_tokens=False)["input_ids"]
    c = tok(context, add_special_tokens=False, return_offsets_mapping=True)
    seq_len, stride, max_len = 48, 10, 5
    room = seq_len - len(q) - 4
    assert len(c["input_ids"]) > 2 * room  # at least three windows
    qa = pipeline("question-answering", model=model, tokenizer=tok, batch_size=3)
    got = qa(question=question, context=context, max_seq_len=seq_len, doc_stride=stride, max_answer_len=max_len,
             top_k=3)
    # independently: each window run alone, eagerly, with the model's automatic global attention
    candidates = []
    start, covered = 0, set()
    while True:
        end = min(start + room, len(c["input_ids"]))
        ids = [0, *q, 2, 2, *c["input_ids"][start:end], 2]
        covered.update(range(start, end))
        out = model(np.array([ids]))
        lo, hi = len(q) + 3, len(q) + 3 + end - start
        s_log, e_log = out.start_logits.numpy()[0], out.end_logits.numpy()[0]
        ps, pe = softmax(s_log[lo:hi]), softmax(e_log[lo:hi])
        for s in range(hi - lo):
            for e in range(s, min(hi - lo, s + max_len)):
                candidates.append((ps[s] * pe[e], c["offset_mapping"][start + s][0],
                                   c["offset_mapping"][start + e][1]))
        if end == len(c["input_ids"]):
            break
        start = end - stride
    assert covered == set(range(len(c["input_ids"])))
    best = {}
    for score, a, b in candidates:
        best[(a, b)] = max(score, best.get((a, b), 0))
    expected = sorted(best.items(), key=lambda kv: -kv[1])[:3]
    assert [(a["start"], a["end"]) for a in got] == [k for k, _ in expected]
    np.testing.assert_allclose([a["score"] for a in got], [v for _, v in expected], rtol=1e-4)
    assert all(a["answer"] == context[a["start"]:a["end"]] for a in got)


def test_qa_impossible_answer_and_errors(tok, models):
    qa = pipeline("question-answering", model=models[T.TFLongformerForQuestionAnswering], tokenizer=tok)
    answers = qa(question="Where?", context="Paris is the capital.", handle_impossible_answer=True, top_k=50)
    assert any(a["answer"] == "" and a["start"] == a["end"] == 0 for a in answers)
    with pytest.raises(ValueError, match="context of question"):
        qa(question="Where?", context="   ")
    with pytest.raises(ValueError, match="no room is left"):
        qa(question="where " * 60, context="Paris.", max_seq_len=32)
    with pytest.raises(ValueError, match="doc_stride"):
        qa(question="Where?", context=TEXT, max_seq_len=32, doc_stride=100)
    with pytest.raises(ValueError, match="missing"):
        qa({"question": "Where?"})
    with pytest.raises(ValueError, match="2 questions and 3 contexts"):
        qa(question=["a?", "b?"], context=["x", "y", "z"])


# -------------------------------------------------------------------------------------- text classification
def test_text_classification_scores_are_the_softmax_of_the_logits(tok, models):
    model = models[T.TFLongformerForSequenceClassification]
    clf = pipeline("text-classification", model=model, tokenizer=tok, batch_size=2)
    texts = ["Paris is the capital of France.", TEXT, {"text": "Rivers run.", "text_pair": "Mountains rise."}]
    got = clf(texts, top_k=None)
    for x, ranked in zip(texts, got):
        ids = tok(x["text"], x["text_pair"])["input_ids"] if isinstance(x, dict) else tok(x)["input_ids"]
        probs = softmax(model(np.array([ids])).logits.numpy()[0])  # the model's own global attention on <s>
        order = np.argsort(-probs, kind="stable")
        assert [r["label"] for r in ranked] == [LABELS[i] for i in order]
        np.testing.assert_allclose([r["score"] for r in ranked], probs[order], rtol=1e-4)
    one = clf(texts[0])
    assert one == {"label": got[0][0]["label"], "score": pytest.approx(got[0][0]["score"], rel=1e-4)}
    sig = clf(texts[0], function_to_apply="sigmoid", top_k=2)
    logits = model(np.array([tok(texts[0])["input_ids"]])).logits.numpy()[0]
    np.testing.assert_allclose(sorted((r["score"] for r in sig), reverse=True), sorted(1 / (1 + np.exp(-logits)))[::-1][:2],
                               rtol=1e-4)


def test_text_classification_long_inputs_truncate_with_a_warning(tok, models):
    model = models[T.TFLongformerForSequenceClassification]
    clf = pipeline("text-classification", model=model, tokenizer=tok)
    long = TEXT * 4
    with pytest.warns(UserWarning, match="1 of 1 inputs were longer than 128 tokens"):
        got = clf(long, top_k=None)
    ids = tok(long, truncation=True, max_length=128)["input_ids"]
    probs = softmax(model(np.array([ids])).logits.numpy()[0])
    np.testing.assert_allclose(sorted(r["score"] for r in got), sorted(probs), rtol=1e-4)
    with pytest.raises(ValueError, match="reads at most 128"):
        clf(long, truncation=False)
    with pytest.raises(ValueError, match="function_to_apply"):
        clf("x", function_to_apply="tanh")


# ------------------------------------------------------------------------------------- token classification
def test_token_classification_labels_are_the_logits_argmax(tok, models):
    model = models[T.TFLongformerForTokenClassification]
    ner = pipeline("ner", model=model, tokenizer=tok)
    text = "Paris is the capital of France, and Berlin of Germany."
    got = ner(text, ignore_labels=())
    enc = tok(text, return_offsets_mapping=True)
    logits = model(np.array([enc["input_ids"]])).logits.numpy()[0, 1:-1]
    probs = softmax(logits)
    assert [g["entity"] for g in got] == [LABELS[i] for i in logits.argmax(-1)]
    np.testing.assert_allclose([g["score"] for g in got], probs.max(-1), rtol=1e-4)
    assert [(g["start"], g["end"]) for g in got] == [tuple(o) for o in enc["offset_mapping"][1:-1]]
    assert all(g["word"] == text[g["start"]:g["end"]] for g in got)
    assert [g["index"] for g in got] == list(range(1, len(got) + 1))
    grouped = ner(text, aggregation_strategy="first", ignore_labels=())
    assert grouped == group_entities(text, enc["offset_mapping"][1:-1], probs, LABELS, "first", ())


def test_token_classification_long_text_takes_each_token_from_its_most_central_window(tok, models):
    model = models[T.TFLongformerForTokenClassification]
    text = TEXT * 3
    ner = pipeline("token-classification", model=model, tokenizer=tok, max_length=40, batch_size=4)
    got = ner(text, ignore_labels=(), stride=12)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    n, room = len(enc["input_ids"]), 38
    spans = _windows(n, room, 12)
    assert len(spans) >= 4 and spans[0] == (0, room) and spans[-1][1] == n
    assert all(a[1] - b[0] == 12 for a, b in zip(spans, spans[1:]))
    expected = np.zeros((n, len(LABELS)))
    best = np.full(n, -1)
    for start, end in spans:
        logits = model(np.array([[0, *enc["input_ids"][start:end], 2]])).logits.numpy()[0, 1:-1]
        for j in range(end - start):
            c = min(j, end - start - 1 - j)
            if c > best[start + j]:
                best[start + j], expected[start + j] = c, logits[j]
    assert [g["entity"] for g in got] == [LABELS[i] for i in expected.argmax(-1)]
    np.testing.assert_allclose([g["score"] for g in got], softmax(expected).max(-1), rtol=1e-4)


def test_group_entities_strategies():
    text = "Jean-Luc Picard visited New York today"
    #        tokens: Jean | -Luc | Picard | visited | New | York | today
    offsets = [(0, 4), (4, 8), (9, 15), (16, 23), (24, 27), (28, 32), (33, 38)]
    labels = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}

    def p(k, q=0.9):
        row = np.full(5, (1 - q) / 4)
        row[k] = q
        return row

    probs = np.stack([p(1, 0.9), p(3, 0.6), p(2, 0.8), p(0), p(3, 0.7), p(4, 0.5), p(0)])
    simple = group_entities(text, offsets, probs, labels, "simple")
    # token level: "-Luc" is B-LOC, so it splits the person
    assert [(g["entity_group"], g["word"]) for g in simple] == [("PER", "Jean"), ("LOC", "-Luc"), ("PER", "Picard"),
                                                               ("LOC", "New York")]
    assert simple[-1]["score"] == pytest.approx((0.7 + 0.5) / 2)
    first = group_entities(text, offsets, probs, labels, "first")
    assert [(g["entity_group"], g["word"], g["start"], g["end"]) for g in first] == [
        ("PER", "Jean-Luc Picard", 0, 15), ("LOC", "New York", 24, 32)]
    assert first[0]["score"] == pytest.approx((0.9 + 0.8) / 2)
    average = group_entities(text, offsets, probs, labels, "average")
    assert [g["word"] for g in average] == ["Jean-Luc Picard", "New York"]
    assert average[0]["score"] == pytest.approx(((0.9 + 0.1) / 2 + 0.8) / 2)  # 0.1: B-PER in the -Luc row
    mx = group_entities(text, offsets, probs, labels, "max")
    assert [g["entity_group"] for g in mx] == ["PER", "LOC"]
    none = group_entities(text, offsets, probs, labels, "none")
    assert [t["entity"] for t in none] == ["B-PER", "B-LOC", "I-PER", "B-LOC", "I-LOC"]
    assert [t["index"] for t in none] == [1, 2, 3, 5, 6]
    everything = group_entities(text, offsets, probs, labels, "simple", ignore_labels=())
    assert [g["entity_group"] for g in everything] == ["PER", "LOC", "PER", "O", "LOC", "O"]
    # B- starts a new entity even after the same type
    two = group_entities("Ann Bob", [(0, 3), (4, 7)], np.stack([p(1), p(1)]), labels, "simple")
    assert [g["word"] for g in two] == ["Ann", "Bob"]
    with pytest.raises(ValueError, match="aggregation_strategy"):
        group_entities(text, offsets, probs, labels, "mean")


# --------------------------------------------------------------------------------------- factory, batching
def test_pipeline_from_checkpoint_directory(tmp_path, tok, models):
    model = models[T.TFLongformerForSequenceClassification]
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    clf = pipeline("sentiment-analysis", model=str(tmp_path))
    direct = pipeline("text-classification", model=model, tokenizer=tok)
    a, b = clf("Paris is nice.", top_k=None), direct("Paris is nice.", top_k=None)
    assert [r["label"] for r in a] == [r["label"] for r in b]
    np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], rtol=1e-5)
    qa_dir = tmp_path / "qa"
    models[T.TFLongformerForQuestionAnswering].save_pretrained(qa_dir)
    with pytest.raises(FileNotFoundError, match="No tokenizer files"):
        pipeline("question-answering", model=str(qa_dir))
    qa = pipeline("question-answering", model=qa_dir, tokenizer=str(tmp_path))
    assert isinstance(qa(question="Where?", context="Paris is the capital.")["answer"], str)


def test_pipeline_argument_errors(tok, models, cfg):
    with pytest.raises(ValueError, match="Unknown task"):
        pipeline("summarization", model=models[T.TFLongformerForMaskedLM], tokenizer=tok)
    with pytest.raises(TypeError, match="needs a TFLongformerForMaskedLM"):
        pipeline("fill-mask", model=models[T.TFLongformerForQuestionAnswering], tokenizer=tok)
    with pytest.raises(ValueError, match="Give `model=`"):
        pipeline("fill-mask")
    with pytest.raises(ValueError, match="Give `tokenizer=`"):
        pipeline("fill-mask", model=models[T.TFLongformerForMaskedLM])
    small = T.LongformerConfig.from_dict(cfg.to_dict(), vocab_size=100)
    with pytest.raises(ValueError, match="do not belong together"):
        pipeline("fill-mask", model=T.TFLongformerForMaskedLM(small), tokenizer=tok)
    with pytest.raises(ValueError, match="max_length"):
        pipeline("fill-mask", model=models[T.TFLongformerForMaskedLM], tokenizer=tok, max_length=4096)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline("fill-mask", model=models[T.TFLongformerForMaskedLM], tokenizer=tok, batch_size=0)


def test_graph_equals_eager_and_batch_size_does_not_matter(tok, models):
    model = models[T.TFLongformerForQuestionAnswering]
    inputs = [{"question": q, "context": TEXT[: 40 * (i + 1)]} for i, q in enumerate(["Where?", "Who runs?", "What?"])]
    eager = pipeline("question-answering", model=model, tokenizer=tok, batch_size=1, compile=False)(inputs, top_k=2)
    graph = pipeline("question-answering", model=model, tokenizer=tok, batch_size=2, compile=True)(inputs, top_k=2)
    for a, b in zip(eager, graph):
        assert [(x["start"], x["end"]) for x in a] == [(x["start"], x["end"]) for x in b]
        np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], rtol=1e-4)


def test_progress_bar_goes_to_stderr_on_long_jobs(tok, models, capsys):
    clf = pipeline("text-classification", model=models[T.TFLongformerForSequenceClassification], tokenizer=tok,
                   batch_size=1, compile=False)
    clf(["a b c"] * 3)
    assert capsys.readouterr().err == ""  # short job: no bar
    clf.progress = True
    clf(["a b c"] * 3)
    err = capsys.readouterr()
    assert "text-classification: 3/3" in err.err and err.out == ""
    stream = io.StringIO()
    bar = _Progress(100, "job", True, stream)
    for _ in range(100):
        bar.update(1)
    assert stream.getvalue().count("\n") == 11  # not a tty: about one line per 10%


def test_module_docstring_example():
    import doctest

    import tf_longformer.pipelines

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert doctest.testmod(tf_longformer.pipelines).failed == 0
    assert os.path.basename(tf_longformer.pipelines.__file__) == "pipelines.py"
