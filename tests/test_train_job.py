"""The main job's comparison holds up: `tf-longformer train --seeds N` (mean, sample sd, min, max over seeds, one
tokenizer and one split for all) and the chunk-and-pool baseline (every `baseline_length`-token chunk of the first
`max_length` tokens, a document predicted by the mean of its chunks' logits). Tiny runs: a few documents, a few
steps."""

import contextlib
import io
import json
import re
from collections import Counter

import numpy as np
import pytest

import tf_longformer as T
from tf_longformer.apps.train_job import (Corpus, Settings, Trainer, chunk_document, chunk_model_name,
                                          pool_chunk_logits, summarize_seeds, truncate)
from tf_longformer.cli import main

BOS, EOS = 0, 2


# ------------------------------------------------------------------------------------------------- chunking
def _document(n_body):
    """An encoded document of `n_body` tokens between <s> and </s>, every token distinct (so each is countable)."""
    return [BOS] + list(range(10, 10 + n_body)) + [EOS]


def test_chunks_cover_every_token_of_the_first_4096_exactly_once():
    seq = truncate(_document(9000), 4096, EOS)            # what the long model reads: <s> 4094 tokens </s>
    assert len(seq) == 4096
    chunks = chunk_document(seq, 512, BOS, EOS)
    assert all(c[0] == BOS and c[-1] == EOS and 3 <= len(c) <= 512 for c in chunks)
    bodies = [t for c in chunks for t in c[1:-1]]
    assert bodies == seq[1:-1]                            # in order, nothing dropped, nothing repeated
    assert Counter(bodies) == Counter(seq[1:-1]) and max(Counter(bodies).values()) == 1
    # 4094 tokens = 8 chunks of 510 and a short last chunk of 14 (16 with <s> and </s>)
    assert [len(c) for c in chunks] == [512] * 8 + [16]
    assert BOS not in bodies and EOS not in bodies


@pytest.mark.parametrize("n_body, sizes", [
    (300, [302]),                 # shorter than one chunk: one chunk, the document itself
    (510, [512]),                 # exactly one chunk
    (1020, [512, 512]),           # exactly two: no empty third chunk
    (1021, [512, 512, 3]),        # a last chunk of one token
    (0, [2]),                     # nothing between <s> and </s>
])
def test_chunk_sizes(n_body, sizes):
    seq = _document(n_body)
    chunks = chunk_document(seq, 512, BOS, EOS)
    assert [len(c) for c in chunks] == sizes
    assert [t for c in chunks for t in c[1:-1]] == seq[1:-1]
    if n_body <= 510:
        assert chunks == [seq]


def test_chunks_of_a_real_tokenizers_output():
    """The job's inputs start with <s> and end with </s>: chunks of a tokenizer's output cover all its tokens."""
    text = "Rivers run to the sea and mountains rise over the plains. " * 40
    tok = T.LongformerTokenizerFast.train_new_from_iterator([text] * 4, vocab_size=300)
    ids = tok(text)["input_ids"]
    seq = truncate(ids, 128, tok.eos_token_id)
    assert seq[0] == tok.bos_token_id and seq[-1] == tok.eos_token_id and len(seq) == 128
    chunks = chunk_document(seq, 32, tok.bos_token_id, tok.eos_token_id)
    assert len(chunks) == 5 and [len(c) for c in chunks] == [32, 32, 32, 32, 8]
    assert [t for c in chunks for t in c[1:-1]] == seq[1:-1]
    assert all(c[0] == tok.bos_token_id and c[-1] == tok.eos_token_id for c in chunks)


def test_chunk_length_errors():
    for bad in (2, 0, -5, 4.0, True):
        with pytest.raises(ValueError, match=r"`chunk_length` must be an integer of at least 3.*got"):
            chunk_document(_document(10), bad, BOS, EOS)


# -------------------------------------------------------------------------------------------------- pooling
def test_pooling_is_the_mean_over_every_chunk_of_a_document():
    rng = np.random.default_rng(0)
    owner = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    logits = rng.normal(size=(len(owner), 4))
    pooled = pool_chunk_logits(logits, owner, 3)
    for d in range(3):
        np.testing.assert_allclose(pooled[d], logits[owner == d].mean(0), rtol=1e-12)
    # every chunk counts: changing any one chunk changes its document's pooled row, and only that one
    for k in range(len(owner)):
        changed = logits.copy()
        changed[k] += np.array([0.0, 0.0, 0.0, 50.0])
        again = pool_chunk_logits(changed, owner, 3)
        d = owner[k]
        assert again[d].argmax() == 3 and not np.allclose(again[d], pooled[d])
        np.testing.assert_array_equal(np.delete(again, d, 0), np.delete(pooled, d, 0))
    # chunks in any order: pooling follows the owner index, not the position
    perm = rng.permutation(len(owner))
    np.testing.assert_allclose(pool_chunk_logits(logits[perm], owner[perm], 3), pooled, rtol=1e-12)


def test_pooling_alternatives():
    rng = np.random.default_rng(1)
    owner = np.repeat(np.arange(20), rng.integers(1, 6, size=20))
    logits = 3 * rng.normal(size=(len(owner), 4))
    by_logits = pool_chunk_logits(logits, owner, 20, "mean_logits")
    by_log_probs = pool_chunk_logits(logits, owner, 20, "mean_log_probs")
    probs = pool_chunk_logits(logits, owner, 20, "mean_probs")
    # the mean of log-probabilities is the mean of the logits less one constant per document: same prediction,
    # same probabilities after a softmax
    np.testing.assert_array_equal(by_logits.argmax(-1), by_log_probs.argmax(-1))
    diff = by_logits - by_log_probs
    np.testing.assert_allclose(diff, diff[:, :1].repeat(4, 1), rtol=1e-9)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match=r"Documents \[2\] have no chunk"):
        pool_chunk_logits(logits[:3], np.array([0, 1, 3]), 4)
    with pytest.raises(ValueError, match="must be 'mean_logits'"):
        pool_chunk_logits(logits, owner, 20, "max")
    with pytest.raises(ValueError, match=r"must be in \[0, 3\)"):
        pool_chunk_logits(logits[:2], np.array([0, 5]), 3)


def test_summarize_seeds_sample_sd():
    def run(seed, acc):
        return {"seed": seed, "accuracy": {"majority_class": 0.5, "majority_label": "a", "long_model": acc},
                "accuracy_vs_tokens_read": {"long_model": {"16": acc}},
                "accuracy_by_document_length": [{"tokens": [1, 9], "documents": 4, "majority_class": 0.5,
                                                 "long_model": acc}],
                "long_model": {"fit_seconds": 1.0}}

    agg = summarize_seeds([run(0, 0.5), run(1, 0.75), run(2, 1.0)])
    v = agg["accuracy"]["long_model"]
    assert v["mean"] == pytest.approx(0.75) and v["sd"] == pytest.approx(0.25)  # n - 1: sqrt((0.25² + 0 + 0.25²) / 2)
    assert (v["min"], v["max"], v["values"]) == (0.5, 1.0, [0.5, 0.75, 1.0])
    assert agg["accuracy_by_document_length"][0]["long_model"]["sd"] == pytest.approx(0.25)
    assert summarize_seeds([run(0, 0.5)])["accuracy"]["long_model"]["sd"] is None


# ------------------------------------------------------------------------------------------------ tiny runs
def _corpus():
    """24 documents of 60-200 words, two labels, a fixed split (so runs with other seeds keep it): 8 held out, 4 of
    each label."""
    rng = np.random.default_rng(0)
    words = {"sea": "ships ports harbours sailors waves tides", "land": "farms fields wheat barns ploughs hills"}
    texts, labels = [], []
    for i in range(24):
        label = "sea" if i % 2 else "land"
        vocab = (words[label] + " the of and").split()
        texts.append(" ".join(rng.choice(vocab, size=int(rng.integers(60, 200)))))
        labels.append(label)
    return Corpus(name="tiny", texts=texts, labels=labels, label_names=["land", "sea"],
                  titles=[f"doc {i}" for i in range(24)], test_mask=np.isin(np.arange(24) % 6, [0, 1]))


TINY = dict(max_length=128, baseline_length=32, epochs=2, batch_size=6, vocab_size=300, hidden_size=16,
            num_layers=1, num_heads=2, intermediate_size=32, attention_window=16, learning_rate=3e-3, export=False)


def _run(output, **kw):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = Trainer(_corpus(), Settings(output=str(output), **{**TINY, **kw})).run()
    return report, out.getvalue()


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """Seeds 3 and 4 (base 3): the long model, the 32-token model and the chunk-and-pool baseline for each."""
    out = tmp_path_factory.mktemp("two_seeds")
    report, printed = _run(out, seed=3, seeds=2)
    return out, report, printed


def test_two_seeds_report_mean_and_spread(two_seeds):
    out, report, printed = two_seeds
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["across_seeds"] == report["across_seeds"] and on_disk["seeds"] == [3, 4]
    assert [r["seed"] for r in on_disk["per_seed"]] == [3, 4]
    agg = on_disk["across_seeds"]
    assert agg["seeds"] == [3, 4]
    for key in ("long_model", "short_model", "chunk_model", "chunk_model_mean_probabilities"):
        v = agg["accuracy"][key]
        values = [r["accuracy"][key] for r in on_disk["per_seed"]]
        assert v["values"] == values
        assert v["mean"] == pytest.approx(np.mean(values)) and v["sd"] == pytest.approx(np.std(values, ddof=1))
        assert v["min"] == min(values) and v["max"] == max(values)
    for b, bucket in enumerate(agg["accuracy_by_document_length"]):
        for key in ("long_model", "short_model", "chunk_model"):
            values = [r["accuracy_by_document_length"][b][key] for r in on_disk["per_seed"]]
            assert bucket[key]["values"] == values and bucket[key]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert set(agg["accuracy_vs_tokens_read"]["long_model"]["128"]) >= {"mean", "sd", "min", "max"}
    assert set(agg["fit_seconds"]) == {"long_model", "short_model", "chunk_model"}
    # the top level stays the first seed's (the checkpoint's), as in a one-seed run
    assert on_disk["accuracy"] == on_disk["per_seed"][0]["accuracy"]
    assert on_disk["long_model"] == on_disk["per_seed"][0]["long_model"] and "first_seed_note" in on_disk
    assert (out / "checkpoint" / "config.json").exists() and (out / "report.png").stat().st_size > 10_000
    # the printout: mean +- sd (min, max) for every model, per length bucket too
    name = chunk_model_name(32, 128)
    assert "over 2 seeds (3-4): mean ± sample sd (min, max)" in printed
    assert f"Longformer, {name}: " in printed and "== seed 4 (2 of 2)" in printed
    lines = [x for x in printed.splitlines() if x.startswith("  documents of ")]
    assert lines and all(x.count("±") == 3 for x in lines)


def test_the_chunk_baseline_trains_on_every_chunk(two_seeds):
    out, report, _ = two_seeds
    chunk = report["chunk_model"]
    assert chunk["name"] == "32-token chunks of the first 128, mean-pooled logits"
    assert chunk["batch_size_chunks"] == 6 * 128 // 32
    # recount from the run's own tokenizer (saved with the checkpoint) and training documents
    tok = T.LongformerTokenizerFast.from_pretrained(str(out / "checkpoint"))
    corpus = _corpus()
    train = [t for t, held in zip(corpus.texts, corpus.test_mask) if not held]
    seqs = [truncate(x, 128, tok.eos_token_id) for x in tok(train)["input_ids"]]
    chunks = [chunk_document(x, 32, tok.bos_token_id, tok.eos_token_id) for x in seqs]
    assert chunk["training_chunks"] == sum(len(c) for c in chunks)
    assert sum(len(c) - 2 for cs in chunks for c in cs) == sum(len(x) - 2 for x in seqs)  # as many tokens
    assert chunk["training_chunks"] > 3 * len(train)       # the documents are longer than 128 tokens
    assert len(chunk["history"]["loss"]) == 2
    assert set(report["accuracy"]) >= {"chunk_model", "chunk_model_mean_probabilities", "chunk_model_single_chunks"}
    assert np.array(report["confusion_chunk_model"]).sum() == report["n_test"]


def test_seeds_change_the_result_and_the_same_seed_repeats_it(two_seeds, tmp_path):
    out, report, _ = two_seeds
    a, b = report["per_seed"]
    for key in ("long_model", "short_model", "chunk_model"):
        assert not np.allclose(a[key]["history"]["loss"], b[key]["history"]["loss"], rtol=0, atol=1e-6), key
    # seed 4 alone (the second seed of the run above): the same long model, epoch by epoch
    alone, printed = _run(tmp_path / "alone", seed=4, baseline_length=0)
    np.testing.assert_allclose(alone["long_model"]["history"]["loss"], b["long_model"]["history"]["loss"], rtol=1e-6)
    np.testing.assert_allclose(alone["long_model"]["history"]["val_loss"], b["long_model"]["history"]["val_loss"],
                               rtol=1e-6)
    assert alone["accuracy"]["long_model"] == b["accuracy"]["long_model"]
    # its weights differ from seed 3's, the two-seed run's checkpoint
    first = T.TFLongformerForSequenceClassification.from_pretrained(str(out / "checkpoint"))
    second = T.TFLongformerForSequenceClassification.from_pretrained(str(tmp_path / "alone" / "checkpoint"))
    diffs = [float(np.abs(v.numpy() - w.numpy()).max()) for v, w in zip(first.weights, second.weights)]
    assert max(diffs) > 1e-3
    # a one-seed run prints as before: no spread, sd null in report.json
    assert "±" not in printed and "over 1 seeds" not in printed and "Longformer, first   128 tokens" in printed
    assert alone["across_seeds"]["accuracy"]["long_model"]["sd"] is None and alone["seeds"] == [4]
    assert "chunk_model" not in alone["accuracy"]      # --baseline-length 0: no baselines at all


def test_seeds_settings_errors(tmp_path):
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match=rf"`seeds` \(--seeds\) must be a whole number of at least 1.*got {bad!r}"):
            Settings(seeds=bad).validate()
    with pytest.raises(ValueError, match=r"`seed` \(--seed\) must be a whole number in \[0, .*got -1"):
        Settings(seed=-1).validate()
    with pytest.raises(ValueError, match=r"`seed` \(--seed\).*got 4294967295"):
        Settings(seed=2**32 - 1, seeds=2).validate()
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"w{i} x y", "label": "ab"[i % 2]}) + "\n" for i in range(8)))
    with pytest.raises(SystemExit, match=r"--seeds must be a whole number of at least 1 .*got 0\."):
        main(["train", "--data", str(data), "--output", str(tmp_path / "o"), "--seeds", "0"])


def test_cli_passes_seeds_and_the_chunk_switch(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(Trainer, "run", lambda self: seen.append(self.s) or {})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"w{i} x y", "label": "ab"[i % 2]}) + "\n" for i in range(8)))
    assert main(["train", "--data", str(data), "--seeds", "5", "--seed", "7"]) == 0
    assert main(["train", "--data", str(data), "--no-chunk-baseline"]) == 0
    assert (seen[0].seeds, seen[0].seed, seen[0].chunk_baseline) == (5, 7, True)
    assert (seen[1].seeds, seen[1].seed, seen[1].chunk_baseline) == (1, 0, False)


def test_one_seed_summary_and_plot_with_the_chunk_baseline(two_seeds, tmp_path):
    """A one-seed run prints each figure alone (no spread), the chunk baseline by its name; its plot draws."""
    from tf_longformer.apps.train_job import write_plot

    _, report, _ = two_seeds
    one = dict(report, per_seed=report["per_seed"][:1], seeds=[3],
               across_seeds=summarize_seeds(report["per_seed"][:1]))
    trainer = Trainer(_corpus(), Settings(output=str(tmp_path), **TINY))
    trainer.report = one
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        trainer.print_summary()
    printed = out.getvalue()
    acc = report["per_seed"][0]["accuracy"]
    assert f"Longformer, {chunk_model_name(32, 128)}: {100 * acc['chunk_model']:.1f}%\n" in printed
    assert re.search(rf"Longformer, first    32 tokens +{100 * acc['short_model']:.1f}%\n", printed), printed
    assert "±" not in printed and "seeds" not in printed
    assert write_plot(one, str(tmp_path / "one.png")) and (tmp_path / "one.png").stat().st_size > 10_000


def test_bfloat16_precision_trains_from_the_same_weights_in_bfloat16(tmp_path, monkeypatch):
    """`precision="bfloat16"`: every model the job trains computes in bfloat16 (the mixed_bfloat16 policy), starting
    from the float32 run's initial weights (one seed: the same draw); its losses stay near float32's (bf16
    rounding, not another run) and the report records the precision."""
    built = []
    original = Trainer._new_model

    def spy(self, tok):
        model = original(self, tok)
        built.append((model.dtype_policy.name, [w.numpy().copy() for w in model.weights[:3]]))
        return model

    monkeypatch.setattr(Trainer, "_new_model", spy)
    fp32, _ = _run(tmp_path / "fp32", seed=5, baseline_length=0)
    bf16, _ = _run(tmp_path / "bf16", seed=5, baseline_length=0, precision="bfloat16")
    (p32, w32), (p16, w16) = built
    assert (p32, p16) == ("float32", "mixed_bfloat16")
    for a, b in zip(w32, w16):
        np.testing.assert_array_equal(a, b)
    assert bf16["settings"]["precision"] == "bfloat16" and fp32["settings"]["precision"] == "float32"
    l32, l16 = (np.array(r["long_model"]["history"]["loss"]) for r in (fp32, bf16))
    assert np.isfinite(l16).all() and not np.array_equal(l32, l16)
    np.testing.assert_allclose(l16, l32, rtol=0.05)
    with pytest.raises(ValueError, match=r"`precision` \(--precision\) must be one of float32, bfloat16, got 'fp16'"):
        Settings(precision="fp16").validate()


def test_cli_passes_the_precision(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(Trainer, "run", lambda self: seen.append(self.s) or {})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"w{i} x y", "label": "ab"[i % 2]}) + "\n" for i in range(8)))
    assert main(["train", "--data", str(data), "--precision", "bfloat16"]) == 0
    assert main(["train", "--data", str(data)]) == 0
    assert [s.precision for s in seen] == ["bfloat16", "float32"]
    with pytest.raises(SystemExit):
        main(["train", "--data", str(data), "--precision", "float16"])
