#!/usr/bin/env python3
"""Module-level import graph of the `aifr_eval` crate (and its binary, src/main.rs).

Usage:
    python3 scripts/import-graph.py [SRC_DIR] [--dot] [--files] [--fail-on-cycles]

What counts as an import of module B by module A (one module per file; `foo/mod.rs` is `foo`,
`foo.rs` plus `foo/bar.rs` are `foo` and `foo::bar`):
  * `use crate::…`, `use super::…`, `use self::…` and `use child::…` (a module declared with
    `mod child;` in A), including `{…}` groups, `self` inside groups and `as` renames;
  * paths written in code: `crate::x::y::f(…)`, `super::x::T`, `$crate::…` in macros;
  * in src/main.rs, `aifr_eval::…` (the library seen from the binary).
A name bound by such a `use` to a module (`use crate::dataset::lfw;`) makes later code paths
through it (`lfw::parse(…)`) resolve too. A path is resolved to the longest prefix that names a
module file; a name that module merely re-exports (`pub use kfold::SortedPairs;` in
metrics/mod.rs) is followed to the defining module, so `use crate::metrics::SortedPairs` is an
edge to `metrics::kfold`. Bodies of test-only modules
(`#[cfg(test)] mod tests { … }`, or any `cfg` that requires `test`) are ignored, as are comments
and the contents of string and character literals.

Output (plain text, deterministic order):
  1. the edges between top-level modules (`metrics`, `report`, …) with the number of distinct
     file-level edges behind each and the number of import sites;
  2. the cycles: strongly connected components with more than one member, among top-level
     modules and among files, each edge of a component with one example site `file:line`.
     File cycles are split into those that span top-level modules, those inside one top-level
     module that do not go through a parent (siblings using each other), and the usual Rust
     pattern of a parent `mod.rs` and its children using each other (listed last).
With --files the whole file-level edge list is printed too; --dot prints Graphviz instead.
The exit status is 0, unless --fail-on-cycles is given and there is a cycle other than a parent
module and its children using each other (then 1).

Python 3 standard library only; no Cargo involvement, so it runs anywhere in a second.
"""

import argparse
import os
import re
import sys
from collections import defaultdict

LIB_NAME = "aifr_eval"  # the library crate's name as the binary spells it
ROOT = "crate"          # display name of the library root (src/lib.rs)
BIN = "main"            # display name of the binary root (src/main.rs)


# --------------------------------------------------------------------------------------------
# Lexing: blank out comments and literal contents, keep every newline (so offsets map to lines)
# --------------------------------------------------------------------------------------------

def blank(s):
    """Replaces every character of `s` except newlines with a space."""
    return re.sub(r"[^\n]", " ", s)


def strip_comments_and_literals(src):
    """Returns `src` with comments and the insides of string/char literals replaced by spaces.

    The result has the same length and the same line breaks as `src`, so an offset into it is an
    offset into the file. Handles nested block comments, raw strings (`r#"…"#`, `br"…"`), byte
    strings, escapes, and tells char literals (`'a'`, `'\\n'`) from lifetimes (`'a`).
    """
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        nxt = src[i + 1] if i + 1 < n else ""
        # Line comment (also doc comments `///`, `//!`).
        if c == "/" and nxt == "/":
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(src[i:j]))
            i = j
            continue
        # Block comment, possibly nested.
        if c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
            continue
        # Raw string: r"…", r#"…"#, br#"…"# (the prefix must not end an identifier).
        m = re.match(r'b?r(#*)"', src[i:i + 260])
        if m and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = m.group(1)
            start = i + m.end()
            end = src.find('"' + hashes, start)
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(src[i:start] + blank(src[start:end - 1 - len(hashes)]) + src[end - 1 - len(hashes):end])
            i = end
            continue
        # Ordinary (or byte) string with backslash escapes.
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('"' + blank(src[i + 1:j]) + '"')
            i = j + 1
            continue
        # Char literal vs lifetime: `'\…'` and `'x'` are literals, `'a` (no closing quote) is not.
        if c == "'":
            if nxt == "\\":
                j = src.find("'", i + 2)
                if src[i + 2:i + 3] == "'":  # '\''
                    j = src.find("'", i + 3)
                j = n - 1 if j < 0 else j
                out.append("'" + blank(src[i + 1:j]) + "'")
                i = j + 1
                continue
            if i + 2 < n and src[i + 2] == "'":
                out.append("' '")
                i += 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


def matching_brace(text, open_at):
    """Offset just past the `}` that closes the `{` at `open_at` (text is already stripped)."""
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


# `#[cfg(…)]` (possibly followed by more attributes) on an inline `mod name {`.
CFG_MOD = re.compile(r"#\[cfg\((?P<pred>[^\]]*)\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")


def is_test_only(pred):
    """True when a cfg predicate can only hold under `cargo test` (`test`, `all(test, …)`)."""
    pred = re.sub(r"\s+", "", pred)
    if pred == "test":
        return True
    return pred.startswith("all(") and re.search(r"(?<!not\()\btest\b", pred) is not None


def blank_test_modules(text):
    """Blanks the bodies of test-only inline modules, counting braces from the `mod` line."""
    pos = 0
    while True:
        m = CFG_MOD.search(text, pos)
        if not m:
            return text
        if not is_test_only(m.group("pred")):
            pos = m.end()
            continue
        end = matching_brace(text, m.end() - 1)
        text = text[:m.start()] + blank(text[m.start():end]) + text[end:]
        pos = end


# --------------------------------------------------------------------------------------------
# Module discovery
# --------------------------------------------------------------------------------------------

class Module:
    """One source file of the crate."""

    def __init__(self, name, path, rel):
        self.name = name          # "report::html", ROOT for lib.rs, BIN for main.rs
        self.path = path          # absolute path of the file
        self.rel = rel            # path shown in output (relative to the source dir's parent)
        self.text = ""            # stripped source (comments, literals and tests blanked)
        self.children = set()     # names of `mod child;` declared here
        self.reexports = {}       # name -> list of path segments (from `pub use`)
        self.aliases = {}         # name -> (crate, segments) of a crate module brought in by `use`

    @property
    def top(self):
        """The top-level module (layer) this file belongs to."""
        return self.name.split("::")[0]

    def segments(self):
        return [] if self.name in (ROOT, BIN) else self.name.split("::")


def module_name(rel_to_src):
    """`report/html/manifest.rs` -> `report::html::manifest`; `store/mod.rs` -> `store`."""
    parts = rel_to_src[:-3].split(os.sep)
    if parts == ["lib"]:
        return ROOT
    if parts == ["main"]:
        return BIN
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def discover(src_dir):
    """Every `.rs` file under `src_dir`, lexed and with test modules blanked, keyed by module name."""
    modules = {}
    base = os.path.dirname(os.path.abspath(src_dir))
    for dirpath, dirnames, filenames in os.walk(src_dir):
        dirnames.sort()
        for f in sorted(filenames):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            name = module_name(os.path.relpath(path, src_dir))
            mod = Module(name, path, os.path.relpath(path, base))
            with open(path, encoding="utf-8") as fh:
                mod.text = blank_test_modules(strip_comments_and_literals(fh.read()))
            modules[name] = mod
    return modules


# --------------------------------------------------------------------------------------------
# `use` trees and paths
# --------------------------------------------------------------------------------------------

USE_STMT = re.compile(r"(?P<vis>\bpub(?:\s*\([^)]*\))?\s+)?\buse\s+(?P<tree>[^;]+);")
MOD_DECL = re.compile(r"\bmod\s+(\w+)\s*;")
# A path in code (`a::b::c`, not preceded by `::`); only those that start at `crate`, `super`,
# `self`, `$crate`, `aifr_eval`, a child module or a module imported by `use` resolve.
CODE_PATH = re.compile(r"(?<![\w:$])(?P<path>\$?\w+(?:\s*::\s*\w+)+)")


def split_top_level(s, sep=","):
    """Splits `s` at `sep` characters that are not inside `{…}`."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def expand_use_tree(tree, prefix=()):
    """Flattens a `use` tree into (segments, name-in-scope) pairs.

    Renames must already be written `x@y` (see parse_use). For example
    `crate::a::{b, c::{self@k, d}, *}` gives (crate,a,b)/b, (crate,a,c)/k, (crate,a,c,d)/d and
    (crate,a,*)/*.
    """
    results = []
    brace = tree.find("{")
    if brace >= 0 and tree.endswith("}"):
        head = tree[:brace].rstrip(":")
        head_segs = tuple(s for s in head.split("::") if s)
        for sub in split_top_level(tree[brace + 1:-1]):
            results.extend(expand_use_tree(sub, prefix + head_segs))
        return results
    segs = [s for s in tree.split("::") if s]
    name = None
    if segs and "@" in segs[-1]:
        segs[-1], name = segs[-1].split("@", 1)
    if segs and segs[-1] == "self":  # `a::{self}` names `a` itself
        segs = segs[:-1]
    full = prefix + tuple(segs)
    return [(full, name or (full[-1] if full else ""))]


def parse_use(tree):
    """The (segments, name) pairs of the tree of one `use` statement (text between `use` and `;`)."""
    tree = re.sub(r"\b(\w+)\s+as\s+(\w+)\b", r"\1@\2", tree)  # keep renames as one token
    return expand_use_tree(re.sub(r"\s+", "", tree))


class Resolver:
    """Maps paths seen in module `from_mod` to the module file that defines the named item."""

    def __init__(self, modules):
        self.modules = modules

    def absolute(self, from_mod, segs):
        """Turns a path relative to `from_mod` into (crate, segments), or None if external.

        crate is ROOT for the library and BIN for the binary's own modules.
        """
        segs = list(segs)
        if not segs:
            return None
        here = from_mod.segments()
        own_crate = BIN if from_mod.name == BIN else ROOT
        first = segs[0]
        if first in ("crate", "$crate"):
            return own_crate, segs[1:]
        if first == LIB_NAME and from_mod.name == BIN:
            return ROOT, segs[1:]
        if first in ("self", "super"):
            base = here[:]
            while segs and segs[0] in ("self", "super"):
                if segs.pop(0) == "super":
                    if not base:
                        return None
                    base.pop()
            return own_crate, base + segs
        if first in from_mod.children:  # `use child::x` (2018-edition relative path)
            return own_crate, here + segs
        if first in from_mod.aliases:  # `use crate::dataset::lfw;` … `lfw::parse(…)`
            krate, base = from_mod.aliases[first]
            return krate, list(base) + segs[1:]
        return None  # std, an external crate, or a local item

    def names_module(self, from_mod, segs):
        """(crate, segments) when `segs` (from `from_mod`) is exactly a module, else None."""
        target = self.absolute(from_mod, segs)
        if target is None:
            return None
        krate, path = target
        if krate == ROOT and path and "::".join(path) in self.modules:
            return target
        return None

    def resolve(self, from_mod, segs, depth=0):
        """The module name that defines the item `segs` (from `from_mod`), or None."""
        target = self.absolute(from_mod, segs)
        if target is None:
            return None
        krate, path = target
        if krate == BIN:
            return BIN  # the binary referring to itself
        # Longest prefix of `path` that is a module file.
        best, rest = ROOT, path
        for k in range(len(path), 0, -1):
            name = "::".join(path[:k])
            if name in self.modules:
                best, rest = name, path[k:]
                break
        # Follow a re-export of the next name (`pub use inner::Item;`), a few hops at most.
        if rest and depth < 8:
            mod = self.modules[best]
            if rest[0] in mod.reexports:
                again = self.resolve(mod, mod.reexports[rest[0]] + rest[1:], depth + 1)
                if again is not None:
                    return again
        return best


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def collect(modules):
    """All import sites: list of (from_module, to_module, line)."""
    # Pass 1: child modules and re-exports (needed to resolve anything).
    for mod in modules.values():
        mod.children = set(MOD_DECL.findall(mod.text))
        for m in USE_STMT.finditer(mod.text):
            if m.group("vis"):
                for segs, name in parse_use(m.group("tree")):
                    if segs and segs[-1] != "*":
                        mod.reexports[name] = list(segs)
    resolver = Resolver(modules)
    # Pass 2: names that `use` binds to crate modules, so that code paths through them resolve.
    for mod in modules.values():
        for m in USE_STMT.finditer(mod.text):
            for segs, name in parse_use(m.group("tree")):
                target = resolver.names_module(mod, segs)
                if target is not None and name not in ("*", "self"):
                    mod.aliases[name] = target
    sites = []
    # Pass 3: `use` statements, then paths in code (with `use` statements blanked out).
    for mod in modules.values():
        code = mod.text
        for m in USE_STMT.finditer(mod.text):
            line = line_of(mod.text, m.start())
            for segs, _ in parse_use(m.group("tree")):
                segs = [s for s in segs if s != "*"]
                target = resolver.resolve(mod, segs)
                if target is not None and target != mod.name:
                    sites.append((mod.name, target, line))
            code = code[:m.start()] + blank(code[m.start():m.end()]) + code[m.end():]
        for m in CODE_PATH.finditer(code):
            segs = re.sub(r"\s+", "", m.group("path")).split("::")
            target = resolver.resolve(mod, segs)
            if target is not None and target != mod.name:
                sites.append((mod.name, target, line_of(code, m.start())))
    return sites


# --------------------------------------------------------------------------------------------
# Graph algorithms
# --------------------------------------------------------------------------------------------

def strongly_connected(nodes, succ):
    """Tarjan's algorithm, iterative; components returned sorted, each sorted."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(succ.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return sorted(comps)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def build(modules, sites):
    """File edges {(a, b): [distinct lines…]} and top-level edges {(A, B): {(a, b), …}} with site counts."""
    file_edges = defaultdict(set)
    for a, b, line in sites:
        file_edges[(a, b)].add(line)  # one site per line, however many names it imports
    file_edges = {edge: sorted(lines) for edge, lines in file_edges.items()}
    top_edges = defaultdict(set)
    top_sites = defaultdict(int)
    for (a, b), lines in file_edges.items():
        ta, tb = modules[a].top, modules[b].top
        if ta != tb:
            top_edges[(ta, tb)].add((a, b))
            top_sites[(ta, tb)] += len(lines)
    return file_edges, top_edges, top_sites


def example(modules, file_edges, a, b):
    """`file:line` of the first import site of edge a -> b."""
    return f"{modules[a].rel}:{file_edges[(a, b)][0]}"


def successors(edges):
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    return succ


def is_lineage(a, b):
    """True when one of the two modules is the other's ancestor (`store` and `store::format`)."""
    return a.startswith(b + "::") or b.startswith(a + "::") or ROOT in (a, b)


def find_cycles(modules, file_edges, top_edges):
    """The strongly connected components (size > 1) worth reporting, in four groups:

    * top: among top-level modules;
    * cross: among files, spanning more than one top-level module;
    * sibling: among files of one top-level module, still cyclic when the edges between a module
      and its own ancestors are dropped (e.g. two sibling files that use each other);
    * family: components of the edges between a module and its ancestors alone, i.e. a parent
      `mod.rs` using its children while they use `super::…` (idiomatic Rust, for completeness).
    """
    tops = {m.top for m in modules.values()}
    top = [c for c in strongly_connected(tops, successors(top_edges)) if len(c) > 1]
    file_comps = [c for c in strongly_connected(modules, successors(file_edges)) if len(c) > 1]
    cross = [c for c in file_comps if len({modules[n].top for n in c}) > 1]
    unrelated = [e for e in file_edges if not is_lineage(*e)]
    sibling = [c for c in strongly_connected(modules, successors(unrelated)) if len(c) > 1]
    sibling = [c for c in sibling if len({modules[n].top for n in c}) == 1]
    lineage = [e for e in file_edges if is_lineage(*e) and ROOT not in e]
    family = [c for c in strongly_connected(modules, successors(lineage)) if len(c) > 1]
    return top, cross, sibling, family


def print_text(modules, file_edges, top_edges, top_sites, show_files):
    tops = sorted({m.top for m in modules.values()})
    lines_per_top = defaultdict(int)
    files_per_top = defaultdict(int)
    for m in modules.values():
        with open(m.path, encoding="utf-8") as fh:
            lines_per_top[m.top] += sum(1 for _ in fh)
        files_per_top[m.top] += 1

    print("== Top-level modules (files, lines)")
    for t in tops:
        print(f"  {t:<10} {files_per_top[t]:>3} files {lines_per_top[t]:>6} lines")

    print("\n== Edges between top-level modules (A -> B: file edges, import sites)")
    for t in tops:
        outs = sorted(b for (a, b) in top_edges if a == t)
        if not outs:
            continue
        parts = [f"{b} ({len(top_edges[(t, b)])}/{top_sites[(t, b)]})" for b in outs]
        print(f"  {t} -> " + ", ".join(parts))

    comps, cross, sibling, family = find_cycles(modules, file_edges, top_edges)
    print("\n== Cycles among top-level modules")
    if not comps:
        print("  none")
    for c in comps:
        print(f"  {{{', '.join(c)}}}")
        members = set(c)
        for ta, tb in sorted(top_edges):
            if ta in members and tb in members:
                fa, fb = sorted(top_edges[(ta, tb)])[0]
                more = len(top_edges[(ta, tb)]) - 1
                extra = f" (+{more} more file edges)" if more else ""
                print(f"    {ta} -> {tb}: {fa} -> {fb} at {example(modules, file_edges, fa, fb)}{extra}")

    groups = (
        ("spanning top-level modules", cross, lambda a, b: True),
        ("within one top-level module, not through a parent module", sibling, lambda a, b: not is_lineage(a, b)),
        ("parent module <-> its children only (usual Rust, for completeness)", family, is_lineage),
    )
    for title, group, shown in groups:
        print(f"\n== Cycles among files, {title}")
        if not group:
            print("  none")
        for c in group:
            print(f"  {{{', '.join(c)}}}")
            members = set(c)
            for a, b in sorted(file_edges):
                if a in members and b in members and shown(a, b):
                    print(f"    {a} -> {b}  {example(modules, file_edges, a, b)}")

    if show_files:
        print("\n== All file edges (A -> B: sites)")
        for a, b in sorted(file_edges):
            sites = ", ".join(str(x) for x in file_edges[(a, b)])
            print(f"  {a} -> {b}  {modules[a].rel}:{sites}")


def print_dot(modules, file_edges, top_edges, top_sites, show_files):
    """Graphviz: top-level modules (edge label = import sites), or files clustered by layer."""
    print("digraph aifr_eval {")
    print("  rankdir=LR; node [shape=box, fontname=monospace];")
    if show_files:
        by_top = defaultdict(list)
        for m in modules.values():
            by_top[m.top].append(m.name)
        for t in sorted(by_top):
            print(f'  subgraph "cluster_{t}" {{ label="{t}";')
            for n in sorted(by_top[t]):
                print(f'    "{n}";')
            print("  }")
        for a, b in sorted(file_edges):
            print(f'  "{a}" -> "{b}";')
    else:
        cyc = set()
        for c in find_cycles(modules, file_edges, top_edges)[0]:
            cyc.update(c)
        for t in sorted({m.top for m in modules.values()}):
            print(f'  "{t}";')
        for a, b in sorted(top_edges):
            colour = ', color=red' if a in cyc and b in cyc else ""
            print(f'  "{a}" -> "{b}" [label="{top_sites[(a, b)]}"{colour}];')
    print("}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", nargs="?", default=os.path.join(here, "..", "src"), help="source directory (default: src/)")
    ap.add_argument("--dot", action="store_true", help="print Graphviz instead of text")
    ap.add_argument("--files", action="store_true", help="include every file-level edge (text) / files as nodes (dot)")
    ap.add_argument("--fail-on-cycles", action="store_true", help="exit 1 on any cycle other than a parent module and its children")
    args = ap.parse_args()

    modules = discover(os.path.normpath(args.src))
    if not modules:
        print(f"no .rs files under {args.src}", file=sys.stderr)
        return 2
    sites = collect(modules)
    file_edges, top_edges, top_sites = build(modules, sites)
    if args.dot:
        print_dot(modules, file_edges, top_edges, top_sites, args.files)
    else:
        print_text(modules, file_edges, top_edges, top_sites, args.files)
    top, cross, sibling, _family = find_cycles(modules, file_edges, top_edges)
    return 1 if (args.fail_on_cycles and (top or cross or sibling)) else 0


if __name__ == "__main__":
    sys.exit(main())
