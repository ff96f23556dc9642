#!/usr/bin/env python
"""The package's layout, checked: import cycles, stage-to-stage imports, top-level modules, repeated names.

Walks distill/ with `ast` (nothing is imported), resolves every import of a distill module, including
imports inside functions, and prints:

- the import graph's cycles between modules (a module is a .py file; `from . import x` is an import of x);
- imports from one stage (distill/stages/*.py) of another stage;
- the number of top-level modules (distill/*.py) beside the subpackages;
- file names (stems, without __init__) that occur in more than one folder.

Exits 1 when there is any cycle, any stage-to-stage import, a repeated file name, or more top-level
modules than MAX_TOP_LEVEL; CI runs it (tests/test_layout.py).

    python scripts/check_layout.py [--root distill]
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

MAX_TOP_LEVEL = 16  # distill/*.py with __init__, __main__, api and cli (the entry points); 33 before the layout change


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py")) if "conf" not in p.parts}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The distill modules `name` imports, anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, path.name == "__init__.py")
            # `from pkg import mod` imports the module pkg.mod when there is one, else names of pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import distill.x.y` of a name: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def stage_imports(edges: dict[str, set[str]], package: str) -> list[tuple[str, str]]:
    stages = f"{package}.stages"
    return sorted((a, b) for a, targets in edges.items() for b in targets
                  if a.startswith(stages + ".") and b.startswith(stages + ".") and a != b)


def repeated_names(root: Path) -> dict[str, list[str]]:
    seen = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        if path.name != "__init__.py" and "conf" not in path.parts:
            seen[path.stem].append(str(path.relative_to(root.parent)))
    return {stem: paths for stem, paths in seen.items() if len(paths) > 1}


def check(root: Path) -> dict:
    edges = graph(root)
    top = sorted(p.name for p in root.glob("*.py"))
    return {"modules": len(edges), "edges": sum(map(len, edges.values())), "top_level_modules": top,
            "subpackages": sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file()),
            "cycles": cycles(edges), "stage_imports": stage_imports(edges, root.name),
            "repeated_names": repeated_names(root)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / "distill"))
    root = Path(parser.parse_args(argv).root)
    result = check(root)
    print(f"{root.name}: {result['modules']} modules, {result['edges']} import edges; "
          f"{len(result['top_level_modules'])} top-level modules (at most {MAX_TOP_LEVEL}): "
          f"{', '.join(result['top_level_modules'])}; subpackages: {', '.join(result['subpackages'])}")
    print(f"import cycles: {len(result['cycles'])}")
    for component in result["cycles"]:
        print("  " + " <-> ".join(component))
    print(f"stage-to-stage imports: {len(result['stage_imports'])}")
    for a, b in result["stage_imports"]:
        print(f"  {a} -> {b}")
    print(f"file names in more than one folder: {len(result['repeated_names'])}")
    for stem, paths in result["repeated_names"].items():
        print(f"  {stem}: {', '.join(paths)}")
    bad = (result["cycles"] or result["stage_imports"] or result["repeated_names"]
           or len(result["top_level_modules"]) > MAX_TOP_LEVEL)
    print("layout: " + ("FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
