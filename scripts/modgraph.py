#!/usr/bin/env python3
"""Module dependency graph of a crate from its `use` statements and inline paths.

Usage: scripts/modgraph.py CRATE/src [--edges]

Prints the cycles (strongly connected modules); with --edges, every edge first.
An equivalent of `cargo modules dependencies --acyclic` that needs no install.
Modules are named by path from the crate root (`embedded::wire::dispatch`). An edge
A -> B means a file of module A names an item of module B (`crate::B::x`,
`super::x`, `self::x`, a `use` of them). A re-export (`pub use`) is not an edge:
a module that names an item through a re-export depends on the module that
defines the item. Edges to a module's own descendants or ancestors count like any
other (a parent that uses its child and a child that uses
its parent make a cycle, as in `cargo modules dependencies --acyclic`). Test modules
(`#[cfg(test)] mod tests { ... }` at the end of a file) are ignored.
"""
import os, re, sys

src = sys.argv[1]
modules = {}  # module path -> file
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)[:-3].split(os.sep)
        if rel[-1] in ('mod', 'lib', 'main'):
            rel = rel[:-1]
        if rel and rel[0] == 'bin':
            continue
        modules['::'.join(rel)] = path

def strip_tests(text):
    """Drops a trailing `#[cfg(...test...)] mod tests { ... }` (unit tests)."""
    m = re.search(r'#\[cfg\([^\]]*\btest\b[^\]]*\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{', text)
    return text if m is None else text[:m.start()]

def strip_comments(text):
    text = re.sub(r'//[^\n]*', '', text)
    text = re.sub(r'pub\(in [^)]*\)', 'pub', text)
    return re.sub(r'/\*.*?\*/', '', text, flags=re.S)

def expand_use(body):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d']"""
    body = re.sub(r'\s+as\s+\w+', '', body)
    body = re.sub(r'\s+', '', body)
    def rec(prefix, s):
        res = []
        if '{' not in s:
            for part in s.split(','):
                if part:
                    res.append(prefix + part)
            return res
        # split top-level commas
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == '{': depth += 1
            elif ch == '}': depth -= 1
            elif ch == ',' and depth == 0:
                parts.append(s[start:i]); start = i + 1
        parts.append(s[start:])
        for p in parts:
            if not p: continue
            if '{' in p:
                head, rest = p.split('{', 1)
                res += rec(prefix + head, rest[:-1])
            else:
                res.append(prefix + p)
        return res
    return rec('', body)

# `use some_crate as name;` in module M makes `M::name` an external crate.
external = set()
for mod, path in modules.items():
    for m in re.finditer(r'\buse\s+(\w+)\s+as\s+(\w+)\s*;', open(path).read()):
        if m.group(1) not in ('crate', 'self', 'super'):
            external.add((mod + '::' if mod else '') + m.group(2))

def resolve(current, path, relative=False):
    parts = path.split('::')
    if relative and parts[0] not in ('crate', 'super', 'self'):
        child = (current + '::' if current else '') + parts[0]
        if child in modules or child in external:
            parts = ['self'] + parts
    if parts[0] == 'crate':
        base, rest = [], parts[1:]
    elif parts[0] in ('super', 'self'):
        base = current.split('::') if current else []
        rest = parts
        while rest and rest[0] in ('super', 'self'):
            if rest[0] == 'super':
                base = base[:-1]
            rest = rest[1:]
    else:
        return None
    # longest module prefix; None for a path into an external crate alias; a name
    # the module re-exports leads to the module that defines it
    best, after = '::'.join(base), 0
    for i in range(len(rest) + 1):
        cand = '::'.join(base + rest[:i])
        if cand in external:
            return None
        if cand in modules:
            best, after = cand, i
    if after < len(rest) and rest[after] in reexports.get(best, {}):
        target = reexports[best][rest[after]]
        return target
    return best

# `pub use path::{A, B as C};`: name -> the module the path leads to (resolved in a
# second pass, so that chains of re-exports are followed).
raw_reexports = {}
for mod, path in modules.items():
    text = strip_comments(strip_tests(open(path).read()))
    for m in re.finditer(r'\bpub(?:\([^)]*\))?\s+use\s+([^;]+);', text):
        for renamed in re.finditer(r'([\w:]+)\s+as\s+(\w+)', m.group(1)):
            raw_reexports.setdefault(mod, {})[renamed.group(2)] = renamed.group(1)
        for p in expand_use(m.group(1)):
            raw_reexports.setdefault(mod, {})[p.split('::')[-1]] = p
reexports = {}
for _ in range(5):
    for mod, names in raw_reexports.items():
        for name, p in names.items():
            t = resolve(mod, p, relative=True)
            if t is None:
                reexports.setdefault(mod, {})[name] = None  # an external item
            elif t != mod:
                reexports.setdefault(mod, {})[name] = t

edges = {}
for mod, path in modules.items():
    text = strip_comments(strip_tests(open(path).read()))
    targets = set()
    # A re-export (`pub use`) is not a use: whoever names the item through it
    # depends on the module that defines it.
    for m in re.finditer(r'(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);', text):
        if m.group(1):
            continue
        for p in expand_use(m.group(2)):
            t = resolve(mod, p, relative=True)
            if t is not None: targets.add(t)
    text = re.sub(r'\bpub(?:\([^)]*\))?\s+use\s+[^;]+;', '', text)
    for m in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', text):
        t = resolve(mod, m.group(1))
        if t is not None: targets.add(t)
    # Inline paths through a child module (`consumer::join(...)`).
    for m in re.finditer(r'(?<![:\w])([a-z_]\w*(?:::\w+)+)', text):
        first = m.group(1).split('::')[0]
        if (mod + '::' if mod else '') + first in modules:
            t = resolve(mod, 'self::' + m.group(1))
            if t is not None: targets.add(t)
    targets.discard(mod)
    edges[mod] = targets

def sccs(nodes, edges):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
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
    for v in nodes:
        if v not in index: visit(v)
    return out

if '--edges' in sys.argv:
    for mod in sorted(edges):
        print(f"{mod or '(root)'} -> {', '.join(sorted(t or '(root)' for t in edges[mod]))}")
cyc = [sorted(c) for c in sccs(sorted(modules), edges) if len(c) > 1]
print(f"{len(cyc)} cycle(s)")
for c in cyc:
    print('  ' + ' <-> '.join(x or '(root)' for x in c))
