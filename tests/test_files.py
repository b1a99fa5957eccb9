"""Bad files: missing, truncated or corrupt config / weights / tokenizer files give an error naming the file;
untrusted checkpoints never run code or read other files; a killed save leaves the previous checkpoint."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tf_longformer as T
from conftest import tiny_config
from helpers import package_parent
from tf_longformer.checkpoints import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
H5 = os.path.join(FIXTURES, "hf_tf_h5", "base")


@pytest.fixture
def ckpt(tmp_path):
    """A tiny checkpoint (config.json + model.safetensors) of our own, and its model."""
    model = T.TFLongformerModel(tiny_config())
    model.save_pretrained(tmp_path)
    return tmp_path, model


def cut(path, fraction):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * fraction)])


def load(directory):
    return T.TFLongformerModel.from_pretrained(directory)


# ------------------------------------------------------------------------------------------ config.json
def test_missing_config(ckpt):
    path, _ = ckpt
    os.remove(path / "config.json")
    with pytest.raises(FileNotFoundError, match=r"No config file at '.*config\.json'"):
        load(path)


@pytest.mark.parametrize("content, error, pattern", [
    (b"", ValueError, r"config\.json' is not a valid JSON config file"),
    (b'{"vocab_size": 60, "hidden_size": 1', ValueError, r"config\.json' is not a valid JSON config file"),
    (bytes(range(256)), ValueError, r"config\.json' is not a valid JSON config file"),
    (b"[1, 2]", ValueError, r"config\.json' must hold a JSON object, got list"),
    (b'{"model_type": "bert"}', ValueError, r"config\.json' describes a 'bert' model"),
    (b'{"hidden_size": -1}', ValueError, r"Invalid config file '.*config\.json': `hidden_size` must be a positive integer, got -1"),
    (b'{"attention_window": 5}', ValueError, r"Invalid config file '.*config\.json': `attention_window` values must be positive even"),
    (b'{"layer_norm_eps": NaN}', ValueError, r"Invalid config file '.*config\.json': `layer_norm_eps` must be a positive number"),
], ids=["empty", "truncated", "binary", "list", "other model", "bad value", "odd window", "NaN eps"])
def test_corrupt_config(ckpt, content, error, pattern):
    path, _ = ckpt
    (path / "config.json").write_bytes(content)
    with pytest.raises(error, match=pattern):
        load(path)


def test_truncated_config_written_by_us(ckpt):
    path, _ = ckpt
    cut(path / "config.json", 0.5)
    with pytest.raises(ValueError, match=r"config\.json' is not a valid JSON config file"):
        load(path)


def test_config_that_does_not_fit_the_weights_lists_every_mismatch(ckpt):
    path, _ = ckpt
    with pytest.raises(CheckpointError) as err:
        T.TFLongformerModel.from_pretrained(path, vocab_size=70, num_hidden_layers=3, attention_window=4)
    msg = str(err.value)
    assert "model.safetensors" in msg
    assert "missing tensors: ['encoder.layer.2.attention.self.query.weight'" in msg
    assert "embeddings.word_embeddings.weight: checkpoint (60, 16), model (70, 16)" in msg


# ------------------------------------------------------------------------------------------ safetensors
@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.5, 0.999])
def test_truncated_safetensors(ckpt, fraction):
    path, _ = ckpt
    cut(path / "model.safetensors", fraction)
    with pytest.raises(CheckpointError, match=r"Could not read safetensors file '.*model\.safetensors'"):
        load(path)


def test_corrupt_safetensors(ckpt):
    path, _ = ckpt
    (path / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CheckpointError, match=r"Could not read safetensors file '.*model\.safetensors'"):
        load(path)


def test_safetensors_with_unusable_tensors(ckpt):
    path, _ = ckpt
    state = load_file(path / "model.safetensors")
    state["encoder.layer.0.output.dense.bias"] = np.zeros(16, np.int32)
    state["encoder.layer.1.intermediate.dense.weight"][3, 4] = np.nan
    state["embeddings.LayerNorm.weight"][0] = np.inf
    save_file(state, path / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load(path)
    msg = str(err.value)
    assert "unusable tensors:" in msg and "model.safetensors" in msg
    assert "encoder.layer.0.output.dense.bias: dtype int32, not floating point" in msg
    assert "encoder.layer.1.intermediate.dense.weight: holds NaN or infinite values" in msg
    assert "embeddings.LayerNorm.weight: holds NaN or infinite values" in msg


def test_bfloat16_and_float16_safetensors_load(ckpt):
    import ml_dtypes

    path, model = ckpt
    state = load_file(path / "model.safetensors")
    half = {k: v.astype(ml_dtypes.bfloat16 if i % 2 else np.float16) for i, (k, v) in enumerate(state.items())}
    save_file(half, path / "model.safetensors")
    loaded = load(path).hf_state_dict()
    assert set(loaded) == set(half)
    for name, value in loaded.items():
        np.testing.assert_array_equal(value, half[name].astype(np.float32), err_msg=name)


def test_sharded_index_cannot_point_outside_the_directory(ckpt, tmp_path_factory):
    path, _ = ckpt
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.move(path / "model.safetensors", elsewhere / "model.safetensors")
    index = {"weight_map": {"embeddings.word_embeddings.weight": "../" + elsewhere.name + "/model.safetensors"}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"names the shard '\.\./.*'; shards must be plain file names"):
        load(path)
    index["weight_map"] = {"embeddings.word_embeddings.weight": os.path.join(elsewhere, "model.safetensors")}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"shards must be plain file names"):
        load(path)


def test_sharded_index_that_lists_tensors_its_shards_lack(ckpt):
    path, _ = ckpt
    os.rename(path / "model.safetensors", path / "model-00001-of-00001.safetensors")
    index = {"weight_map": {"nowhere.weight": "model-00001-of-00001.safetensors"}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"index\.json' lists tensors that its shards do not hold: \['nowhere\.weight'\]"):
        load(path)
    (path / "model.safetensors.index.json").write_text('{"weight_map": ')
    with pytest.raises(CheckpointError, match=r"Could not read the shard index '.*model\.safetensors\.index\.json'"):
        load(path)


# ------------------------------------------------------------------------------------------------- h5
@pytest.fixture
def h5_dir(tmp_path):
    shutil.copytree(H5, tmp_path / "h5")
    os.remove(tmp_path / "h5" / "expected.npz")
    return tmp_path / "h5"


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.95])
def test_truncated_h5(h5_dir, fraction):
    cut(h5_dir / "tf_model.h5", fraction)
    with pytest.raises(CheckpointError, match=r"tf_model\.h5'"):
        load(h5_dir)


def test_corrupt_h5(h5_dir):
    (h5_dir / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(4000))
    with pytest.raises(CheckpointError, match=r"Could not read HDF5 file '.*tf_model\.h5'"):
        load(h5_dir)


def test_h5_that_is_not_a_keras_weights_file(h5_dir):
    import h5py

    with h5py.File(h5_dir / "tf_model.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CheckpointError, match=r"tf_model\.h5' is HDF5 but not a Keras weights file"):
        load(h5_dir)


def _first_weight(f):
    layer = f.attrs["layer_names"][0]
    group = f[layer.decode() if isinstance(layer, bytes) else layer]
    name = group.attrs["weight_names"][0]
    return group, name.decode() if isinstance(name, bytes) else name


def test_h5_missing_a_listed_weight(h5_dir):
    import h5py

    with h5py.File(h5_dir / "tf_model.h5", "r+") as f:
        group, name = _first_weight(f)
        del group[name]
    with pytest.raises(CheckpointError, match=r"tf_model\.h5' lists the weight '.*' but does not hold it"):
        load(h5_dir)


def test_h5_cannot_read_other_files(h5_dir, tmp_path):
    """An external link or external raw storage would copy another file of this machine into the weights."""
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(10000, dtype=np.float32).tobytes())
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros((100, 16), np.float32)
    original = (h5_dir / "tf_model.h5").read_bytes()
    with h5py.File(h5_dir / "tf_model.h5", "r+") as f:
        group, name = _first_weight(f)
        shape = group[name].shape
        del group[name]
        group[name] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    with pytest.raises(CheckpointError, match=r"is a ExternalLink to data outside the file; refused"):
        load(h5_dir)
    (h5_dir / "tf_model.h5").write_bytes(original)
    with h5py.File(h5_dir / "tf_model.h5", "r+") as f:
        group, name = _first_weight(f)
        del group[name]
        group.create_dataset(name, shape=shape, dtype=np.float32,
                             external=[(str(secret), 0, int(np.prod(shape)) * 4)])
    with pytest.raises(CheckpointError, match=r"reads its data from other files .* refused"):
        load(h5_dir)


# ------------------------------------------------------------------------------------- pytorch_model.bin
def _to_pytorch_bin(path, torch):
    """The checkpoint's model.safetensors replaced by the same tensors in pytorch_model.bin."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in load_file(path / "model.safetensors").items()}
    os.remove(path / "model.safetensors")
    torch.save(state, path / "pytorch_model.bin")
    return state


@pytest.fixture
def bin_dir(ckpt):
    torch = pytest.importorskip("torch")
    path, model = ckpt
    return path, model, _to_pytorch_bin(path, torch), torch


def test_pytorch_bin_without_torch_is_refused_with_the_reason(ckpt, monkeypatch):
    """Runs with or without torch: with it, the file is a real state dict (and torch is hidden below); without
    it, any bytes stand in, since the file must be refused before it is read."""
    import builtins

    path = ckpt[0]
    try:
        import torch
    except ImportError:
        os.remove(path / "model.safetensors")
        (path / "pytorch_model.bin").write_bytes(b"PK\x03\x04 a PyTorch zip pickle, never read without torch")
    else:
        _to_pytorch_bin(path, torch)

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin' is a PyTorch pickle; it is only read with "
                                              r"`torch\.load\(weights_only=True\)`, and torch is not installed"):
        load(path)


@pytest.mark.reference  # torch writes the file
def test_pytorch_bin_loads(bin_dir):
    path, model, _, _ = bin_dir
    again = load(path)
    for a, b in zip(again.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.reference  # torch writes the file
def test_pytorch_bin_nested_or_not_tensors(bin_dir):
    path, _, state, torch = bin_dir
    torch.save({"model": state, "epoch": 3}, path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin' is not a flat state dict of tensors.*"
                                              r"\['epoch \(int\)', 'model \(dict\)'\]"):
        load(path)
    torch.save([1, 2], path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin' does not hold a state dict \(got list\)"):
        load(path)


@pytest.mark.reference  # torch writes the file
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.9])
def test_truncated_pytorch_bin(bin_dir, fraction):
    path = bin_dir[0]
    cut(path / "pytorch_model.bin", fraction)
    with pytest.raises(CheckpointError, match=r"Could not read '.*pytorch_model\.bin' with torch\.load\(weights_only=True\)"):
        load(path)


@pytest.mark.reference  # torch writes the file
def test_pytorch_bin_pickle_with_code_is_refused_and_nothing_runs(bin_dir, tmp_path):
    path, _, state, torch = bin_dir
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(marker),))

    torch.save({**state, "evil": Evil()}, path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"weights_only=True\) \(refused or corrupt\)"):
        load(path)
    assert not marker.exists()


def test_nothing_from_the_checkpoint_directory_is_imported_or_run(ckpt, tmp_path):
    """`auto_map` / custom code entries (`trust_remote_code` in transformers) are never followed."""
    path, model = ckpt
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    (path / "modeling_evil.py").write_text(code)
    (path / "tokenization_evil.py").write_text(code)
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    config["trust_remote_code"] = True
    (path / "config.json").write_text(json.dumps(config))
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(FIXTURES, "tokenizer", name), path / name)
    (path / "tokenizer_config.json").write_text(json.dumps(
        {"auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}, "tokenizer_class": "EvilTokenizer"}))
    load(path)
    T.LongformerTokenizerFast.from_pretrained(path)
    assert not marker.exists()
    assert "modeling_evil" not in sys.modules and "tokenization_evil" not in sys.modules


# ----------------------------------------------------------------------------------------- tokenizer
@pytest.fixture
def tok_dir(tmp_path):
    shutil.copytree(os.path.join(FIXTURES, "tokenizer"), tmp_path / "tok")
    return tmp_path / "tok"


@pytest.mark.parametrize("name, mutate, error, pattern", [
    ("tokenizer.json", "truncate", ValueError, r"Corrupt tokenizer file .*tokenizer\.json"),
    ("tokenizer.json", "binary", ValueError, r"Corrupt tokenizer file .*tokenizer\.json"),
    ("vocab.json", "truncate", ValueError, r"Corrupt tokenizer file .*vocab\.json: not valid JSON"),
    ("vocab.json", "remove", FileNotFoundError, r"Tokenizer file not found: .*vocab\.json"),
    ("merges.txt", "truncate", ValueError, r"Corrupt merges file .*merges\.txt"),
    ("merges.txt", "remove", FileNotFoundError, r"Tokenizer file not found: .*merges\.txt"),
    ("tokenizer_config.json", "truncate", ValueError, r"Corrupt tokenizer file .*tokenizer_config\.json: not valid JSON"),
    ("tokenizer_config.json", "bad value", ValueError, r"Invalid setting in .*tokenizer_config\.json: `model_max_length`"),
])
def test_bad_tokenizer_files(tok_dir, name, mutate, error, pattern):
    if name != "tokenizer.json":  # without tokenizer.json, vocab.json + merges.txt are read
        os.remove(tok_dir / "tokenizer.json")
    path = tok_dir / name
    if mutate == "truncate":
        cut(path, 0.37)
    elif mutate == "binary":
        path.write_bytes(bytes(range(256)))
    elif mutate == "remove":
        os.remove(path)
    else:
        path.write_text('{"model_max_length": -3}')
    for cls in (T.LongformerTokenizerFast, T.LongformerTokenizer):
        with pytest.raises(error, match=pattern):
            cls.from_pretrained(tok_dir)


# ---------------------------------------------------------------------------------------- atomic saves
KILL_SCRIPT = """
import sys
import tf_longformer as T
config = T.LongformerConfig(vocab_size=120000, hidden_size=256, num_hidden_layers=1, num_attention_heads=4,
                            intermediate_size=64, attention_window=4, max_position_embeddings=130)
model = T.TFLongformerModel(config)
model.build()
print("ready", flush=True)
model.save_pretrained(sys.argv[1])
print("saved", flush=True)
"""


def test_killing_a_save_leaves_the_previous_checkpoint(ckpt):
    """SIGKILL a process in the middle of `save_pretrained` (~123 MB of weights): the previous config.json and
    model.safetensors are untouched and load; the next save goes through."""
    path, model = ckpt
    before = {n: (path / n).read_bytes() for n in ("config.json", "model.safetensors")}
    env = dict(os.environ, PYTHONPATH=package_parent() + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        seen = []
        while not seen and proc.poll() is None and time.monotonic() < deadline:
            seen = [p for p in os.listdir(path) if p.startswith(".tmp-")]
            if seen:
                proc.send_signal(signal.SIGKILL)
            else:
                time.sleep(0.0005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert seen, "the save finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p for p in os.listdir(path) if p.startswith(".tmp-")]
    assert leftovers  # the kill landed before the renames
    assert {n: (path / n).read_bytes() for n in before} == before
    again = load(path)
    for a, b in zip(again.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the leftover temporary file is ignored, and the next save replaces the pair
    other = T.TFLongformerModel(tiny_config(intermediate_size=32))
    other.save_pretrained(path)
    assert load(path).config.intermediate_size == 32


def test_a_failed_save_removes_its_temporary_files(ckpt, monkeypatch):
    """Both files are written before either is renamed: a failure there changes nothing and leaves no litter."""
    path, model = ckpt
    before = {n: (path / n).read_bytes() for n in ("config.json", "model.safetensors")}
    import tf_longformer.checkpoints as ck

    def no_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(path)
    assert {n: (path / n).read_bytes() for n in before} == before
    assert not [p for p in os.listdir(path) if p.startswith(".tmp-")]


def test_atomic_write_is_private_unless_shared(tmp_path):
    """Checkpoint files stay private (0600, as `mkstemp` makes them); reports and plots written `shared=True` get
    what a plain `open` would give (0666 less the umask), and no temporary file is left behind."""
    from tf_longformer.files import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(str(tmp_path / "private.bin"), b"x")
        atomic_write_bytes(str(tmp_path / "shared.txt"), b"y", shared=True)
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "private.bin").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "shared.txt").st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["private.bin", "shared.txt"]


def test_save_figure_writes_a_png_atomically_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tf_longformer.files import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    save_figure(fig, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]
