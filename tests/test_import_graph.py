"""The package's import graph (`tools/import_graph.py`): the tool finds circles, and no new one appears."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("import_graph", os.path.join(ROOT, "tools", "import_graph.py"))
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)

# Modules above the tasks: they may use task classes. Everything else is below and may not import a task
# module (nor the package root, which imports them all): the tasks find each other through the registry.
ABOVE_TASKS = ("tf_longformer.models", "tf_longformer.commands", "tf_longformer.apps", "tf_longformer.cli",
               "tf_longformer.pipelines")


def _is_above(module):
    return module == "tf_longformer" or any(module == m or module.startswith(m + ".") for m in ABOVE_TASKS)


def write(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def test_the_tool_finds_top_level_and_deferred_circles_and_resolves_relative_imports(tmp_path):
    pkg = tmp_path / "tf_longformer"
    write(pkg, {
        "__init__.py": "from tf_longformer.a import x\n",
        "a.py": "from . import b\nx = 1\n",
        "b.py": "def f():\n    from tf_longformer.a import x\n    return x\n",  # deferred: still a circle
        "c.py": "import tf_longformer.a\n",  # into the circle, not part of it
        "sub/__init__.py": "from .d import y\n",
        "sub/d.py": "from ..c import *\ny = 2\n",
    })
    known = import_graph.modules(str(pkg))
    assert set(known) == {"tf_longformer", "tf_longformer.a", "tf_longformer.b", "tf_longformer.c",
                          "tf_longformer.sub", "tf_longformer.sub.d"}
    graph = import_graph.edges(known)
    assert graph[("tf_longformer.a", "tf_longformer.b")] == "top"
    assert graph[("tf_longformer.b", "tf_longformer.a")] == "deferred"
    assert graph[("tf_longformer.sub", "tf_longformer.sub.d")] == "top"
    assert graph[("tf_longformer.sub.d", "tf_longformer.c")] == "top"
    assert import_graph.circles(known, graph) == [["tf_longformer.a", "tf_longformer.b"]]
    assert import_graph.main(["--root", str(pkg)]) == 1
    write(pkg, {"b.py": "x = 2\n"})  # the deferred import gone: no circle
    assert import_graph.main(["--root", str(pkg)]) == 0


def test_no_import_circle():
    known = import_graph.modules(os.path.join(ROOT, "tf_longformer"))
    assert import_graph.circles(known, import_graph.edges(known)) == []


def test_no_module_below_the_tasks_imports_a_task_or_an_application():
    known = import_graph.modules(os.path.join(ROOT, "tf_longformer"))
    below = [m for m in known if not _is_above(m)]
    assert "tf_longformer.backbone" in below and "tf_longformer.serving" in below and "tf_longformer.hf" in below
    wrong = sorted((a, b) for (a, b) in import_graph.edges(known) if a in below and _is_above(b))
    assert wrong == []


def test_the_core_library_imports_no_application():
    """`tf_longformer.apps` (bench, jobs, peers) is built on the library; only the command line reaches it."""
    known = import_graph.modules(os.path.join(ROOT, "tf_longformer"))
    front = ("tf_longformer.apps", "tf_longformer.commands", "tf_longformer.cli")

    def within(name, prefixes):
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    into_apps = [f"{a} -> {b}" for a, b in import_graph.edges(known)
                 if within(b, front[:1]) and not within(a, front)]
    assert "tf_longformer.apps" in known and not into_apps, into_apps
