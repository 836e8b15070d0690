#!/usr/bin/env python3
"""Import cycles between the sibling modules of one Rust module directory.

    scripts/module_cycles.py rustok-iggy-connector/src/embedded/wire

Reads every `use super::...` and `super::name::` path of the `.rs` files of the
directory (the test modules excluded), prints the module graph (who names whom) and
every cycle, and exits with 1 if there is a cycle. `mod.rs` is the parent: a file
that names `super::X` for an item X defined in `mod.rs` depends on `mod`.
"""

import pathlib
import re
import sys


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod tests { ... }` blocks (by brace matching)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def names_used(text: str) -> set[str]:
    """The first segment after `super::` of every path, `{a, b}` groups expanded."""
    used = set()
    for m in re.finditer(r"\bsuper::(\{[^}]*\}|\w+)", text):
        part = m.group(1)
        if part.startswith("{"):
            for item in part[1:-1].split(","):
                item = item.strip().split("::")[0].split(" ")[0]
                if item:
                    used.add(item)
        else:
            used.add(part)
    return used


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    modules = {p.stem: strip_tests(p.read_text()) for p in root.glob("*.rs")}
    siblings = set(modules) - {"mod"}
    graph = {}
    for name, text in modules.items():
        if name == "mod":
            # The parent names its children through `self::child`.
            deps = {m.group(1) for m in re.finditer(r"\bself::(\w+)", text)} & siblings
        else:
            used = names_used(text)
            deps = {u for u in used if u in siblings and u != name}
            # Anything else named through `super::` lives in mod.rs.
            if used - siblings - {"self", "super", "*"}:
                deps.add("mod")
        graph[name] = deps
    for name in sorted(graph):
        print(f"{name:10} -> {', '.join(sorted(graph[name])) or '(leaf)'}")
    cycles, state = [], {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    for cycle in cycles:
        print("cycle:", " -> ".join(cycle))
    print(f"{len(cycles)} cycle(s)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
