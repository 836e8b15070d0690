#!/usr/bin/env python3
"""Import cycles between the modules of a crate, from `cargo modules` (0.27 builds on
rustc 1.95: `cargo install cargo-modules@0.27.0 --locked`).

    cargo modules dependencies -p rustok-iggy-connector --lib --all-features \
        --no-externs --no-sysroot --no-owns | scripts/module_cycles.py rustok-iggy-connector/src [--edges]

`cargo modules dependencies --acyclic` checks items, so every type with a method
that names `Self` is a cycle there. This lifts each "uses" edge between two items to
the modules that define them (a module is a file of SRC_DIR, or a `mod` node of the
graph) and prints the strongly connected modules: the import cycles. A `pub use`
re-export counts as a use, and a method counts in the module of its type, as in
cargo-modules. With --edges, every module edge first."""
import os, re, sys
text = sys.stdin.read()
src = sys.argv[1]
crate = re.search(r'label="([a-z_0-9]+)",\s*labelloc', text).group(1)
mods = {crate}
for root, _, files in os.walk(src):
    for f in files:
        if f.endswith('.rs'):
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            mods.add('::'.join([crate] + rel))
            # `#[path = "..."] mod name;`: a module named otherwise than its file (the
            # graph may have no node for it when nothing in it uses anything).
            body = open(os.path.join(root, f), encoding='utf-8').read()
            for m in re.finditer(r'#\[path\s*=\s*"[^"]+"\]\s*(?:#\[[^\]]*\]\s*)*'
                                 r'(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', body):
                mods.add('::'.join([crate] + rel + [m.group(1)]))
for m in re.finditer(r'^\s*"([^"]+)" \[label="[^|]*\bmod\|', text, re.M):
    mods.add(m.group(1))
def module_of(path):
    parts = path.split('::')
    for i in range(len(parts), 0, -1):
        cand = '::'.join(parts[:i])
        if cand in mods:
            return cand
    return parts[0]
edges = {}
for m in re.finditer(r'^\s*"([^"]+)" -> "([^"]+)" \[label="uses"', text, re.M):
    a, b = module_of(m.group(1)), module_of(m.group(2))
    if a != b:
        edges.setdefault(a, set()).add(b)
sys.setrecursionlimit(10000)
index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        out.append(comp)
for v in sorted(set(edges) | mods):
    if v not in index: visit(v)
short = lambda m: m[len(crate) + 2:] if m != crate else '(root)'
if '--edges' in sys.argv:
    for a in sorted(edges):
        print(short(a), '->', ', '.join(sorted(short(b) for b in edges[a])))
cyc = [sorted(short(x) for x in c) for c in out if len(c) > 1]
print(f"{len(cyc)} cycle(s)")
for c in cyc:
    print('  ' + ' <-> '.join(c))
