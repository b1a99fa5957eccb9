"""What a newcomer types from the READMEs works.

- Every Python example in README.md runs.
- Every `tf-longformer ...` line of a ```bash block of README.md and export/README.md is accepted by the real
  argument parser (`tf_longformer.cli.build_parser()`: commands, flags, choices, types, required arguments), and
  every `python export/...py` / `python tools/...py` line names a script that exists and whose own argparse
  accepts the flags. Placeholders (CHECKPOINT, report.txt...) are fine: nothing is run, only parsed.
- export/README.md's "Try it on this machine" walk-through runs verbatim in a folder laid out like a clone after
  the README's first command (`.venv/bin/` shims to this interpreter, `export/` the repository's, a tiny
  `tf-longformer-sotu/checkpoint` made here in the layout of the main job's), on free ports; so does README.md's
  `tf-longformer run --task text-classification --model tf-longformer-sotu/checkpoint ...` line.
"""

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
EXPORT_README = os.path.join(ROOT, "export", "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README, encoding="utf-8").read(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


def test_docstring_examples():
    import doctest

    import tf_longformer.backbone
    import tf_longformer.config
    import tf_longformer.layers.attention
    import tf_longformer.layers.encoder
    import tf_longformer.models.longformer
    import tf_longformer.outputs

    for module in (tf_longformer.backbone, tf_longformer.config, tf_longformer.outputs, tf_longformer.models.longformer,
                   tf_longformer.layers.attention, tf_longformer.layers.encoder):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


# ------------------------------------------------------------------------------- command lines, parsed
def bash_blocks(path):
    """`(first line number, text)` of every ```bash block of a Markdown file."""
    text = open(path, encoding="utf-8").read()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)]


def logical_lines(first_line, block):
    """`(line number, line)` with `\\` continuations joined; blank lines dropped."""
    lines, current, start = [], "", None
    for number, line in enumerate(block.splitlines(), first_line):
        start = number if start is None else start
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append((start, current.strip()))
        current, start = "", None
    return lines


SEPARATORS = {"|", "||", "&&", ";", "&", "|&", "(", ")", ";;"}
REDIRECTIONS = {"<", ">", ">>", ">|", ">&", "<&", "&>", "&>>", "<<", "<<<", "<>"}


def simple_commands(line, variables):
    """The simple commands of a shell line, as argument lists: comments dropped, split at pipes, `&&`, `;`, `&`,
    redirections removed with their target, leading `NAME=value` assignments dropped (a line of assignments only
    records them in `variables`), and a leading `$NAME` expanded from `variables` (the README's `$R --model ...`)."""
    line = re.sub(r"(?<=\s)\d+(?=[<>])", "", line)      # `2>&1`, `2>/dev/null`: the descriptor goes with `>`
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current, skip = [], [], False
    for token in lexer:
        if skip:
            skip = False
        elif token in REDIRECTIONS:
            skip = True
        elif token in SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    out = []
    for words in commands:
        assignments = []
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0], flags=re.S):
            assignments.append(words.pop(0))
        if not words:
            for a in assignments:
                name, value = a.split("=", 1)
                variables[name] = shlex.split(value)
            continue
        if words[0].startswith("$") and words[0][1:] in variables:
            words = variables[words[0][1:]] + words[1:]
        out.append(words)
    return out


def is_python(word):
    return re.fullmatch(r"python(3(\.\d+)?)?", os.path.basename(word)) is not None


def classify(words):
    """`("cli", argv)`, `("script", path, argv)` or None for a command this test does not check."""
    if os.path.basename(words[0]) == "tf-longformer":
        return ("cli", words[1:])
    if is_python(words[0]) and len(words) > 2 and words[1] == "-m" and words[2] == "tf_longformer.cli":
        return ("cli", words[3:])
    if is_python(words[0]) and len(words) > 1 and re.fullmatch(r"(export|tools)/\S+\.py", words[1]):
        return ("script", words[1], words[2:])
    return None


def readme_commands():
    found = []
    for path in (README, EXPORT_README):
        name = os.path.relpath(path, ROOT)
        for first, block in bash_blocks(path):
            variables = {}
            for number, line in logical_lines(first, block):
                for words in simple_commands(line, variables):
                    kind = classify(words)
                    if kind:
                        found.append(pytest.param(kind, line, id=f"{name}:{number}"))
    return found


COMMANDS = readme_commands()


class _Parsed(Exception):
    """Raised by the patched `parse_args` once a script's parser has accepted its arguments."""


def exact_flags(parser):
    """No abbreviated flags (`--max-len` for `--max-length`): a renamed flag must not pass as a prefix of its new
    name. Applied to the subcommands' parsers too."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                exact_flags(sub)
    return parser


def argparse_message(err, code):
    """argparse's `error: ...` line(s) without the usage text before them."""
    text = err.getvalue().strip()
    errors = [line for line in text.splitlines() if "error:" in line]
    return "\n".join(errors) or text or f"exit status {code}"


def refusal_by_cli(argv):
    """None if `tf-longformer ARGV` parses, else argparse's message."""
    from tf_longformer.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            exact_flags(build_parser()).parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                return argparse_message(err, e.code)
    return None


def refusal_by_script(script, argv, monkeypatch):
    """None if `python SCRIPT ARGV` gets past its argument parsing, else why not. The script runs as __main__ up to
    its `parse_args`, which parses for real (unknown flags, choices, types, required arguments) and then stops it."""
    path = os.path.join(ROOT, script)
    if not os.path.isfile(path):
        return f"{script} does not exist"
    if "argparse" not in open(path, encoding="utf-8").read():
        return None  # takes no flags we could check; existing is all
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        original(exact_flags(self), args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(sys, "argv", [path, *argv])
    monkeypatch.setattr(sys, "path", list(sys.path))   # the clients insert their folder
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(path, run_name="__main__")
    except _Parsed:
        return None
    except SystemExit as e:
        if e.code in (0, None):
            return None
        return argparse_message(err, e.code)
    finally:
        monkeypatch.undo()
    return f"{script} ended without parsing its arguments"


def refusal(kind, monkeypatch):
    if kind[0] == "cli":
        return refusal_by_cli(kind[1])
    return refusal_by_script(kind[1], kind[2], monkeypatch)


@pytest.mark.parametrize("kind, line", COMMANDS)
def test_readme_command_line_parses(kind, line, monkeypatch):
    why = refusal(kind, monkeypatch)
    assert why is None, f"`{line}`\nis refused:\n{why}"


def test_readme_command_lines_are_found():
    """The extraction itself: a Markdown or parsing change must not leave the test above with nothing to check."""
    ids = [p.id for p in COMMANDS]
    lines = [p.values[1] for p in COMMANDS]
    assert sum(i.startswith("README.md:") for i in ids) >= 12, ids
    assert sum(i.startswith(os.path.join("export", "README.md")) for i in ids) >= 15, ids
    for expected in ("tf-longformer run --task text-classification --model tf-longformer-sotu/checkpoint",
                     ".venv/bin/tf-longformer bench", ".venv/bin/tf-longformer train",
                     "python tools/measure_gradient_checkpointing.py", "python export/standin_server.py",
                     "--model longformer-qa --assets serving/longformer-qa/1",      # `$R ...`, expanded
                     ".venv/bin/python export/clients/grpc_client.py", "--dtype bfloat16", "--batch 1,4,8",
                     "python tools/measure_bf16_export.py"):
        assert any(expected in line for line in lines), expected


@pytest.mark.parametrize("line", [
    "tf-longformer run --task fill-mask --model CHECKPOINT --no-such-flag",
    "tf-longformer run --task fill-mask-typo --model CHECKPOINT",
    "tf-longformer run --task fill-mask",                                   # --model is required
    "tf-longformer run --task fill-mask --model CHECKPOINT --max-len 5",    # only a prefix of --max-length
    "tf-longformer no-such-command --model CHECKPOINT",
    "tf-longformer export --model M --output O --top-k many",
    "python export/clients/rest_client.py --model m --assets a --no-such-flag",
    "python export/clients/rest_client.py --model m --assets a --format yaml",
    "python export/clients/grpc_client.py --model m",                      # --assets is required
    "python export/standin_server.py --rest-api-port 8501",                # the flag is --rest_api_port
    "python export/no_such_script.py --help",
])
def test_stale_command_lines_are_refused(line, monkeypatch):
    [words] = simple_commands(line, {})
    assert refusal(classify(words), monkeypatch) is not None, line


def test_shell_syntax_is_taken_apart():
    variables = {}
    assert simple_commands('R="python export/clients/rest_client.py --server http://localhost:8501"', variables) == []
    assert simple_commands('echo "a | b" | tf-longformer run --task x --model M --format text < in.txt 2>&1 # c',
                           variables) == [["echo", "a | b"], ["tf-longformer", "run", "--task", "x", "--model", "M",
                                                             "--format", "text"]]
    assert simple_commands("$R --model m > out.json && kill $SERVER &", variables) == [
        ["python", "export/clients/rest_client.py", "--server", "http://localhost:8501", "--model", "m"],
        ["kill", "$SERVER"]]
    assert logical_lines(7, "a \\\n  b\n\nc\n") == [(7, "a    b"), (10, "c")]


# ------------------------------------------------------------------------------- walk-throughs, run
WALKTHROUGH_HEADING = "### Try it on this machine"
BLOCK_TIMEOUT_S = 300  # an upper bound for a loaded machine; about 30 s here


def walkthrough_blocks():
    """The ```bash blocks between the "Try it on this machine" heading and the next heading."""
    text = open(EXPORT_README, encoding="utf-8").read()
    assert WALKTHROUGH_HEADING in text, f"export/README.md has no {WALKTHROUGH_HEADING!r} section"
    section = text.split(WALKTHROUGH_HEADING, 1)[1]
    section = re.split(r"^#{1,6} ", section, maxsplit=1, flags=re.M)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) == 2, "expected the REST block and the gRPC block"
    return blocks


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def shim(path, command):
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\n{command}\n")
    os.chmod(path, 0o755)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A folder laid out like the clone after the README's first command: `.venv/bin/{python,tf-longformer}` are
    this interpreter, `export/` is the repository's, and `tf-longformer-sotu/checkpoint` holds a tiny classifier
    saved the way the main job saves its own (sotu_job / train_job): era labels, tokenizer beside it."""
    import tf_longformer as T
    from tf_longformer.apps.sotu_job import ERA_NAMES

    root = tmp_path_factory.mktemp("clone")
    os.symlink(os.path.join(ROOT, "export"), root / "export")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    shim(bin_dir / "python", f'exec {shlex.quote(sys.executable)} "$@"')
    shim(bin_dir / "tf-longformer", f'exec {shlex.quote(sys.executable)} -m tf_longformer.cli "$@"')
    shim(bin_dir / "pip", 'echo "a README walk-through must not install anything" >&2; exit 1')

    texts = ["The treaty with the Indian tribes was ratified by the Senate.",
             "Our commerce with foreign nations and the state of the public debt.",
             "We will balance the budget and protect the environment for our children.",
             "The Congress shall assemble at least once in every year."] * 10
    tok = T.LongformerTokenizerFast.train_new_from_iterator(texts, vocab_size=300)
    tok.model_max_length = 128
    id2label = dict(enumerate(ERA_NAMES))
    config = T.LongformerConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        attention_window=8, max_position_embeddings=130, type_vocab_size=1, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, sep_token_id=tok.sep_token_id,
        id2label=id2label, label2id={v: k for k, v in id2label.items()})
    checkpoint = root / "tf-longformer-sotu" / "checkpoint"
    T.TFLongformerForSequenceClassification(config).save_pretrained(str(checkpoint))
    tok.save_pretrained(str(checkpoint))

    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"   # for README.md's bare `tf-longformer`
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(T.__file__)))
    if os.path.basename(package_parent) not in ("site-packages", "dist-packages"):
        # The code under test is a source tree (this checkout): the shims' processes must import the same one.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return {"root": root, "env": env, "labels": set(ERA_NAMES)}


def run_bash(text, clone, name):
    """Runs `text` with `bash -e` in the clone, in a session of its own that is killed whatever happens."""
    script = clone["root"] / name
    script.write_text(text)
    start = time.perf_counter()
    proc = subprocess.Popen(["bash", "-e", str(script)], cwd=clone["root"], env=clone["env"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{name} ran past {BLOCK_TIMEOUT_S} s\n--- stdout\n{out}\n--- stderr\n{err[-5000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # a server the block left behind (its kill line never ran)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in clone["root"].glob("standin*.log"))
    assert proc.returncode == 0, (f"{name} failed (exit status {proc.returncode})\n--- stdout\n{out}\n--- stderr\n"
                                  f"{err[-5000:]}{logs}")
    return out, time.perf_counter() - start


def json_values(text):
    """The JSON documents a command printed (each starting a line with `{` or `[`)."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while True:
        m = re.compile(r"^[\[{]", re.M).search(text, pos)
        if not m:
            return values
        try:
            value, pos = decoder.raw_decode(text, m.start())
            values.append(value)
        except ValueError:
            pos = m.end()


def assert_era_answers(answers, labels):
    assert isinstance(answers, list) and answers, answers
    for a in answers:
        assert a["label"] in labels, a
        assert 0 < a["score"] <= 1 and set(a["scores"]) == labels, a
        assert a["score"] == max(a["scores"].values()) and abs(sum(a["scores"].values()) - 1) < 1e-4, a


def assert_port_closed(port, within_s=15):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return
        time.sleep(0.2)
    pytest.fail(f"the block ended but port {port} still accepts connections: its server was not stopped")


@pytest.fixture(scope="module")
def rest_walkthrough(clone):
    """export/README.md's REST block, verbatim but for its ports (8500/8501 replaced by free ones)."""
    block = walkthrough_blocks()[0]
    assert "8501" in block and "tf-longformer-sotu/checkpoint" in block, block
    grpc_port, rest_port = free_ports(2)
    out, seconds = run_bash(block.replace("8500", str(grpc_port)).replace("8501", str(rest_port)), clone,
                            "walkthrough-rest.sh")
    assert_port_closed(rest_port)
    return out, seconds


def test_export_readme_walkthrough_rest(rest_walkthrough, clone):
    out, seconds = rest_walkthrough
    values = json_values(out)
    exports = [v for v in values if isinstance(v, dict) and "export" in v]
    assert exports and exports[0]["task"] == "sequence_classification" and exports[0]["tokenizer"], out
    assert os.path.isdir(clone["root"] / "serving" / "sotu-era" / "1" / "assets.extra"), out
    answers = [v for v in values if isinstance(v, list)]
    assert len(answers) == 1, out
    assert_era_answers(answers[0], clone["labels"])
    print(f"REST walk-through: {seconds:.1f} s")


def test_export_readme_walkthrough_grpc(rest_walkthrough, clone):
    pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis")
    block = walkthrough_blocks()[1]
    assert "8500" in block and "grpc_client.py" in block, block
    grpc_port, rest_port = free_ports(2)
    out, seconds = run_bash(block.replace("8500", str(grpc_port)).replace("8501", str(rest_port)), clone,
                            "walkthrough-grpc.sh")
    assert_port_closed(grpc_port)
    answers = [v for v in json_values(out) if isinstance(v, list)]
    assert len(answers) == 1, out
    assert_era_answers(answers[0], clone["labels"])
    rest_answers = [v for v in json_values(rest_walkthrough[0]) if isinstance(v, list)][0]
    if len(rest_answers) == len(answers[0]):  # the same sentences, the same export: the same answers
        for r, g in zip(rest_answers, answers[0]):
            assert r["label"] == g["label"] and abs(r["score"] - g["score"]) < 1e-5, (r, g)
    print(f"gRPC walk-through: {seconds:.1f} s")


def test_readme_text_classification_line_runs(clone):
    """README.md's `tf-longformer run --task text-classification --model tf-longformer-sotu/checkpoint ...` line,
    verbatim, on a speech longer than the model reads (as every real address is)."""
    lines = [line for first, block in bash_blocks(README) for _, line in logical_lines(first, block)
             if "--model tf-longformer-sotu/checkpoint" in line and "tf-longformer run" in line]
    assert len(lines) == 1, lines
    (clone["root"] / "speech.txt").write_text(
        "Fellow-Citizens of the Senate and House of Representatives:\n\n"
        + "The treaty with the Indian tribes was ratified by the Senate, and our commerce with foreign nations "
          "grows with every year. " * 30)
    out, seconds = run_bash(lines[0] + "\n", clone, "readme-text-classification.sh")
    rows = [json.loads(row) for row in out.splitlines() if row.strip()]
    assert len(rows) == 1, out
    assert rows[0]["label"] in clone["labels"] and 0 < rows[0]["score"] <= 1, rows
    print(f"README text-classification line: {seconds:.1f} s")
