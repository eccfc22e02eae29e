#!/usr/bin/env python3
"""Import cycles among the modules of the library (src/, not src/bin).

Reads every `use` declaration (`use crate::…`, `use super::…`, `use self::…`,
with `{…}` groups, `pub use` included; test modules after `#[cfg(test)]`
left out), resolves each path to the module that defines the item
(following `pub use` re-exports, so `use super::Graph` in src/nn/unet counts
as an import of nn::graph, not of nn), and prints the cycles (strongly
connected components of more than one node) of two graphs:

  nn      the children of crate::nn (attention, graph, conv, …; items that
          nn/mod.rs defines itself are the node `nn`)
  crate   the top-level modules (app, backend, nn, samplers, …)

with the imports that make each edge. Exit status 1 if there is a cycle in
the graph named by --fail (default: nn), else 0.

Usage: .ci/import_cycles.py [--src DIR] [--fail nn|crate|none]
"""

import argparse
import os
import re
import sys
from collections import defaultdict


def module_of(path, src):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(["crate"] + rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        if cur:
            parts.append(cur)
        return parts

    def rec(prefix, s):
        i = s.find("{")
        if i < 0:
            out.append(prefix + s)
            return
        head, body = s[:i], s[i + 1 : s.rindex("}")]
        for part in split_top(body):
            rec(prefix + head, part)

    rec("", tree)
    return [re.sub(r"\bas\b.*$", "", p) for p in out]


def uses(text):
    """(is_pub, path) of every use declaration before the first #[cfg(test)],
    then of every path written out in the code (`super::conv::copy_run(…)`)."""
    text = strip_comments(text).split("#[cfg(test)]")[0]
    decl = r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);"
    for m in re.finditer(decl, text):
        for p in expand(m.group(2)):
            yield bool(m.group(1)), p
    code = re.sub(decl, "", text)
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
    for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", code):
        yield False, m.group(0)


def absolute(path, module, modules):
    """The absolute path of a use path in `module` (None: std or a crate)."""
    parts = path.split("::")
    if parts[0] == "crate":
        return tuple(parts)
    base = list(module)
    if parts[0] == "self":
        parts = parts[1:]
    elif parts[0] == "super":
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
    elif module + (parts[0],) not in modules:
        return None  # std or an external crate
    return tuple(base + parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    ap.add_argument("--fail", default="nn", choices=["nn", "crate", "none"])
    args = ap.parse_args()
    src = os.path.normpath(args.src)

    files = {}
    for root, dirs, names in os.walk(src):
        if os.path.relpath(root, src).split(os.sep)[0] == "bin":
            continue
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[module_of(p, src)] = p
    modules = set(files)
    raw = {m: list(uses(open(p, encoding="utf-8").read())) for m, p in files.items()}
    # Re-exports: module -> name -> absolute path ('*' for globs).
    reexp = defaultdict(dict)
    for m, us in raw.items():
        for is_pub, p in us:
            a = absolute(p, m, modules)
            if is_pub and a:
                reexp[m][a[-1]] = a

    def origin(a, depth=0):
        """The module defining the item at absolute path a."""
        for k in range(len(a), 0, -1):
            if a[:k] in modules:
                mod, rest = a[:k], a[k:]
                if rest and depth < 10:
                    target = reexp[mod].get(rest[0])
                    if target and target != a:
                        return origin(target + rest[1:], depth + 1)
                    if rest[0] == "*" or not rest:
                        return mod
                    for name, t in reexp[mod].items():
                        if name == "*" and t[:-1] != mod:
                            o = origin(t[:-1] + rest, depth + 1)
                            if o != t[:-1]:
                                return o
                return mod
        return None

    edges = {"nn": defaultdict(list), "crate": defaultdict(list)}
    for m, us in raw.items():
        for _, p in us:
            a = absolute(p, m, modules)
            if not a:
                continue
            o = origin(a)
            if not o:
                continue
            where = f"{os.path.relpath(files[m], os.path.dirname(src))}: use {p}"
            if len(m) > 1 and len(o) > 1 and m[1] != o[1]:
                edges["crate"][(m[1], o[1])].append(where)
            if m[1:2] == ("nn",) and o[1:2] == ("nn",):
                a_ = m[2] if len(m) > 2 else "nn"
                b_ = o[2] if len(o) > 2 else "nn"
                if a_ != b_:
                    edges["nn"][(a_, b_)].append(where)

    failed = False
    for level in ("nn", "crate"):
        e = edges[level]
        comps = sccs({a for a, _ in e} | {b for _, b in e}, e)
        cyc = [c for c in comps if len(c) > 1]
        print(f"{level}: {len(cyc)} cycle(s)")
        for c in cyc:
            print("  {" + ", ".join(sorted(c)) + "}")
            for (a, b), ws in sorted(e.items()):
                if a in c and b in c:
                    print(f"    {a} -> {b}: " + "; ".join(sorted(set(ws))[:4])
                          + (f" (+{len(set(ws)) - 4})" if len(set(ws)) > 4 else ""))
        failed |= bool(cyc) and args.fail == level
    sys.exit(1 if failed else 0)


def sccs(nodes, edges):
    adj = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
