"""An installed tf-longformer (a wheel, `pip install .`) has everything its commands read: no path outside the package.

`tf-longformer bench --peer-python PY` runs a script in another environment: it ships in the package
(tf_longformer/apps/peers/) and is located from there, never from the source tree's tools/.
"""

import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tokenize
import zipfile

import pytest

import tf_longformer
from tf_longformer.apps import bench, peers

PACKAGE = os.path.dirname(os.path.abspath(tf_longformer.__file__))
# the wheel is built from the source tree beside tests/ (in CI's installed legs PACKAGE is site-packages' copy)
SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# folders of the source tree that an installed package does not have
OUTSIDE = ("tools", "docs", "export", "notebooks", "tests", "build", "dist")


def package_modules():
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(root, name)


def test_the_peer_script_ships_in_the_package_and_imports_nothing_of_ours():
    assert os.path.isfile(bench.PEER_SCRIPT)
    assert os.path.dirname(bench.PEER_SCRIPT) == os.path.join(PACKAGE, "apps", "peers") == os.path.dirname(
        peers.script_path())
    # a package: `packages = find:` ships it
    assert os.path.isfile(os.path.join(PACKAGE, "apps", "peers", "__init__.py"))
    # it runs in ANOTHER python (tf-keras, transformers): nothing of tf_longformer, no Keras 3
    tree = ast.parse(open(bench.PEER_SCRIPT, encoding="utf-8").read())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "json", "os", "resource", "sys", "time", "traceback", "numpy", "tensorflow",
                        "tf_keras", "transformers"}, imported
    # importing it changes nothing (its environment variables are set by main())
    top = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.If))
           and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert all(isinstance(n, ast.Assign) and isinstance(n.value, (ast.Constant, ast.Dict)) for n in top)


def _dirname_depth(node):
    """How many `os.path.dirname(...)` wrap `__file__` in the expression `node` (None: no `__file__` in it)."""
    if isinstance(node, ast.Name) and node.id == "__file__":
        return 0
    if isinstance(node, ast.Call):
        inner = [d for d in (_dirname_depth(a) for a in node.args) if d is not None]
        if not inner:
            return None
        name = ast.unparse(node.func)
        return max(inner) + (1 if name.endswith("dirname") else 0)
    for child in ast.iter_child_nodes(node):
        d = _dirname_depth(child)
        if d is not None:
            return d
    return None


def test_no_module_reads_a_path_outside_the_package():
    """No string of a module names a source-tree folder as a path, and no path is built above the package."""
    path_like = re.compile(r"(?<![\w.-])(%s)/" % "|".join(OUTSIDE))
    problems = []
    for path in package_modules():
        rel = os.path.relpath(path, os.path.dirname(PACKAGE))
        source = open(path, encoding="utf-8").read()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.STRING:
                continue
            if path_like.search(tok.string):
                problems.append(f"{rel}:{tok.start[0]}: {tok.string[:80]}")
        depth = len(os.path.relpath(path, PACKAGE).split(os.sep))  # tf_longformer/x.py: 1, commands/x.py: 2
        for node in ast.walk(ast.parse(source)):
            # a file path from __file__: os.path.join(<dirname^k(__file__)>, ...) must stay in the package
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("path.join") and node.args:
                d = _dirname_depth(node.args[0])
                if d is not None and d > depth:
                    problems.append(f"{rel}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert not problems, "paths outside the package:\n" + "\n".join(problems)


def test_the_outside_path_check_catches_the_old_peer_path():
    old = 'PEER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "x.py")'
    call = ast.parse(old).body[0].value
    assert _dirname_depth(call.args[0]) == 2  # > 1, the depth of a top-level module (tf_longformer/x.py)


def _wheel_tools():
    try:
        __import__("setuptools")
        __import__("wheel")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _wheel_tools(), reason="needs setuptools and wheel to build the wheel offline")
def test_a_built_wheel_has_every_module_and_the_installed_copy_finds_its_peer_script(tmp_path):
    """Builds the wheel from a copy of the source tree (no build/ left in it), installs it into a folder, and
    from an empty directory imports that copy: the bench locates the peer script inside it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in"):
        if os.path.exists(os.path.join(SOURCE_TREE, name)):
            shutil.copy(os.path.join(SOURCE_TREE, name), src / name)
    shutil.copytree(os.path.join(SOURCE_TREE, "tf_longformer"), src / "tf_longformer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (whl,) = (tmp_path / "dist").glob("tf_longformer-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    expected = {os.path.relpath(p, os.path.dirname(PACKAGE)).replace(os.sep, "/") for p in package_modules()}
    assert expected <= names, sorted(expected - names)
    assert "tf_longformer/apps/peers/hf_tf_longformer_bench.py" in names
    assert "tf_longformer/apps/bench_targets.json" in names  # package data the bench reads
    assert not [n for n in names if n.split("/")[0] in OUTSIDE]
    entry_points = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tf-longformer = tf_longformer.cli:main" in entry_points

    target = tmp_path / "site"
    with zipfile.ZipFile(whl) as z:  # what `pip install --no-deps` puts in site-packages
        z.extractall(target)
    empty = tmp_path / "cwd"
    empty.mkdir()
    probe = ("import json, os, tf_longformer, tf_longformer.apps.bench as b; "
             "print(json.dumps({'package': tf_longformer.__file__, 'peer': b.PEER_SCRIPT, "
             "'exists': os.path.isfile(b.PEER_SCRIPT), 'targets': len(b.load_targets())}))")
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy first, its dependencies from this python
    run = subprocess.run([sys.executable, "-c", probe], cwd=empty, capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["package"].startswith(str(target)) and got["peer"].startswith(str(target)) and got["exists"]
    assert got["targets"] == len(bench.load_targets())  # the installed copy reads every target of the source
