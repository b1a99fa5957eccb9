"""The import graph of the `tf_longformer` package, and its circles.

    python tools/import_graph.py            # every circle (a strongly connected group of modules), exit 1 if any
    python tools/import_graph.py --edges    # also every edge: importer -> imported  [where: top | deferred]

Read from the source with `ast` (nothing is imported). An edge is any import of a `tf_longformer` module, at the
top of a module ("top") or inside a function ("deferred": an import put off to break a circle at run time is
still a circle in the design, so it counts). `from tf_longformer.x import name` is an edge to `x`, or to
`x.name` when that is a module; importing a package also runs its `__init__`, so it is an edge to the package.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

PACKAGE = "tf_longformer"


def modules(root):
    """`{module name: file}` for every `.py` under the package folder `root`."""
    out = {}
    base = os.path.dirname(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, base)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = path
    return out


def _resolve(importer, node, known):
    """The package modules an import node names, seen from module `importer`."""
    found = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                found.append(alias.name)
        return [m for m in found if m in known]
    if node.level:  # relative: from .x import y
        is_package = known[importer].endswith("__init__.py")
        anchor = importer.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        target = ".".join(anchor + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
        return []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append(sub if sub in known else target)
    return [m for m in dict.fromkeys(found) if m in known]


def edges(known):
    """`{(importer, imported): "top" | "deferred"}` ("top" wins when both)."""
    out = {}
    for name, path in known.items():
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        top = set()
        for node in tree.body:
            for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    top.add(id(sub))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(name, node, known):
                    if target == name:
                        continue
                    where = "top" if id(node) in top else "deferred"
                    if out.get((name, target)) != "top":
                        out[(name, target)] = where
    return out


def circles(known, graph):
    """The strongly connected groups of more than one module (Tarjan), each sorted, largest first."""
    succ = {m: sorted(b for (a, b) in graph if a == m) for m in known}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(known):
        if v not in index:
            visit(v)
    return sorted(groups, key=lambda g: (-len(g), g))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       PACKAGE), help="the package folder (default: this tree's)")
    parser.add_argument("--edges", action="store_true", help="print every edge too")
    args = parser.parse_args(argv)
    known = modules(args.root)
    graph = edges(known)
    if args.edges:
        for (a, b), where in sorted(graph.items()):
            print(f"{a} -> {b}  [{where}]")
    groups = circles(known, graph)
    print(f"{len(known)} modules, {len(graph)} edges, {len(groups)} circle(s)")
    for group in groups:
        inside = sorted((a, b, w) for (a, b), w in graph.items() if a in group and b in group)
        print(f"circle of {len(group)}: " + ", ".join(group))
        for a, b, w in inside:
            print(f"    {a} -> {b}  [{w}]")
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main())
