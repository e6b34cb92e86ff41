"""`curate report`: one self-contained HTML page about a finished run.

  curate report OUT [-o FILE]        (default OUT/report.html)

What the page shows, read from OUT's manifest and shards (the statistics through the readers of
`curate inspect`, pipeline/inspect_cmd.py, whose checks it also runs and shows):

- the mixture's token shares against their targets, every bucket (empty ones included), missed
  targets first (groups, then buckets, as the manifest's `mixture.unmet` orders them);
- documents, text bytes and tokens per stage and per rule (a funnel from input to output;
  tokens are known only for documents that were counted, see README "Token counts");
- for each rule that dropped documents, a few of them: the rejected/ rows that keep their text
  (`output.rejected_text_sample` per rule, smallest id hashes; all with output.rejected_text) or,
  in annotate mode, the annotated rows of that drop_rule, chosen the same way;
- quality score and length (tokens) histograms per bucket;
- in annotate mode, a histogram of every heuristic signal (`h_<signal>` columns) with the
  thresholds of the run's config marked, and how many documents fail each;
- duplicate cluster sizes of the documents that survived dedup.

The page is plain HTML with inline CSS and inline SVG charts drawn here; no script, no external
resource (a Content-Security-Policy forbids any), and every string from the data (document
text, ids, rule and bucket names) is escaped: rejected text is hostile text.

Exit codes: 0 written, 1 an incomplete output or files that do not match the manifest (the page
is still written, with the problems at its top), 2 a path that is not a curate output or a
destination that cannot be written.
"""

from __future__ import annotations

import argparse
import heapq
import html
import math
import os
import posixpath
import re
import sys
import uuid
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from classifiers.text import stable_hash64
from pipeline import inspect_cmd, schema

REPORT_NAME = schema.REPORT_NAME
EXAMPLES_PER_RULE = 5  # rejected examples shown per rule
EXCERPT_CHARS = 1200  # of each example's text
LENGTH_BINS = 24
SIGNAL_BINS = 40
DUP_BINS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, None))
BLUE, ORANGE, RED, GREEN, GREY = "#3b6fb6", "#e08a1e", "#c0392b", "#2e8b57", "#888"
# C0/C1 controls other than tab and newline: shown as U+FFFD, never passed to the page
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class ReportError(Exception):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------- reading


def _read_shard(target: inspect_cmd.Target, rel: str, columns: list[str], filters=None) -> pa.Table | None:
    with target.fs.open_input_file(posixpath.join(target.root, rel)) as f:
        pf = pq.ParquetFile(f)
        have = [c for c in columns if c in pf.schema_arrow.names]
        t = pf.read(columns=have) if filters is None else pq.read_table(f, columns=have, filters=filters)
    bucket = inspect_cmd.hive_bucket(rel)
    if "bucket" in columns and "bucket" not in t.column_names and bucket is not None:
        t = t.append_column("bucket", pa.repeat(pa.scalar(bucket, pa.string()), t.num_rows))
    return t


def _shards(target: inspect_cmd.Target, kind: str) -> list[str]:
    return [
        s["path"]
        for s in target.manifest.get("shards", [])
        if s.get("kind") == kind and s.get("path") in target.files and s.get("rows")
    ]


def _rows(target: inspect_cmd.Target, signal_columns: list[str]) -> pa.Table:
    """The data shards' statistics columns (and signals, drop rules in annotate mode)."""
    cols = [
        "bucket",
        "language",
        "quality_score",
        "n_tokens",
        "dup_cluster_size",
        "repeats",
        "drop_rule",
        *signal_columns,
    ]
    tables = inspect_cmd._parallel(lambda rel: _read_shard(target, rel, cols), _shards(target, target.kind))
    out = {}
    for c in cols:
        parts = [
            t.column(c).cast(pa.float64() if c not in ("bucket", "language", "drop_rule") else pa.string())
            for t in tables
            if c in t.column_names
        ]
        n = sum(t.num_rows for t in tables if c not in t.column_names)
        typ = pa.string() if c in ("bucket", "language", "drop_rule") else pa.float64()
        out[c] = pa.chunked_array([*(p.combine_chunks() for p in parts), *([pa.nulls(n, typ)] if n else [])], typ)
    return pa.table(out)


def sample_hash(doc_id: str) -> int:
    """The rejected-text sample's order (pipeline/schema.py REJECTED_SAMPLE_SALT)."""
    return stable_hash64(doc_id, salt=schema.REJECTED_SAMPLE_SALT)


def rejected_examples(target: inspect_cmd.Target, per_rule: int) -> dict[str, list[dict]]:
    """Per rule, up to `per_rule` dropped documents with their text: in filter mode the rejected/
    rows that kept it, in annotate mode the annotated rows of that drop_rule; the smallest id
    hashes first (the order the run's sample is chosen in). Two reads: ids and rules of every
    row, then the chosen rows (row groups whose id range holds none are skipped)."""
    annotate = target.kind == schema.ANNOTATED_DIR
    kind, rule_col = (target.kind, "drop_rule") if annotate else ("rejected", "rule")
    shards = _shards(target, kind)
    if per_rule <= 0 or not shards:
        return {}
    keys = inspect_cmd._parallel(lambda rel: _read_shard(target, rel, ["id", rule_col]), shards)
    best: dict[str, list] = {}  # rule -> max-heap (negated) of (hash, id, shard)
    for rel, t in zip(shards, keys):
        ids, rules = t.column("id").to_pylist(), t.column(rule_col).to_pylist()
        for doc_id, rule in zip(ids, rules):
            if rule is None:
                continue
            item = (-sample_hash(doc_id), doc_id, rel)
            heap = best.setdefault(rule, [])
            # a few more than shown: a row whose text was not kept (an id held twice) is skipped
            if len(heap) < per_rule * 2:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    wanted: dict[str, set] = {}
    for heap in best.values():
        for _, doc_id, rel in heap:
            wanted.setdefault(rel, set()).add(doc_id)
    cols = ["id", "source", rule_col, "text", *([] if annotate else ["stage", "detail"])]
    got = inspect_cmd._parallel(
        lambda rel: _read_shard(target, rel, cols, filters=pc.field("id").isin(sorted(wanted[rel]))), sorted(wanted)
    )
    out: dict[str, list[dict]] = {}
    for t in got:
        for r in t.to_pylist():
            if r.get(rule_col) is not None and r.get("text") is not None:
                out.setdefault(r[rule_col], []).append(r)
    for rule, rows in out.items():
        rows.sort(key=lambda r: (sample_hash(r["id"]), r["id"]))
        out[rule] = rows[:per_rule]
    return out


# ---------------------------------------------------------------------------------------- statistics


def histogram(x: np.ndarray, edges: np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
    return [int(c) for c in counts]


def log_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    lo, hi = max(1.0, lo), max(2.0, hi)
    return np.geomspace(lo, hi * 1.0001, bins + 1)


def signal_thresholds(manifest: dict) -> dict[str, list[dict]]:
    """signal -> the thresholds the run's config applied to it: [{rule, value, side}], side
    "min" (fails below), "max" (fails above) or "nonzero" (a switch: fails when not 0)."""
    from classifiers.heuristics import HeuristicsParams
    from classifiers.heuristics.rules import CODE_RULE_SETS, TEXT_RULE_SETS

    cfg = ((manifest.get("config") or {}).get("stages") or {}).get("heuristics")
    try:
        params = HeuristicsParams.model_validate(cfg or {})
    except ValueError:
        return {}
    out: dict[str, list[dict]] = {}
    if not params.enabled:
        return out
    for set_name, rules in TEXT_RULE_SETS + CODE_RULE_SETS:
        p = getattr(params, set_name)
        if not p.enabled:
            continue
        for rule in rules:
            bounds = rule.thresholds(p)
            if bounds is None:
                continue
            low, high, switch = bounds
            name = f"heuristics/{set_name}.{rule.name}"
            for value, side in ((low, "min"), (high, "max"), (0.0 if switch else None, "nonzero")):
                if value is not None:
                    out.setdefault(rule.signal, []).append({"rule": name, "value": float(value), "side": side})
    return out


def _fails(x: np.ndarray, t: dict) -> int:
    if t["side"] == "min":
        return int((x < t["value"]).sum())
    if t["side"] == "max":
        return int((x > t["value"]).sum())
    return int((x != 0).sum())


def signal_stats(rows: pa.Table, thresholds: dict[str, list[dict]]) -> list[dict]:
    out = []
    for col in rows.column_names:
        if not col.startswith(schema.SIGNAL_PREFIX):
            continue
        x, _ = inspect_cmd._values(rows.column(col))
        if not x.size:
            continue
        name = col[len(schema.SIGNAL_PREFIX) :]
        marks = thresholds.get(name, [])
        lo, hi = float(x.min()), float(x.max())
        for t in marks:
            lo, hi = min(lo, t["value"]), max(hi, t["value"])
        pos = x[x > 0]
        log = lo >= 0 and pos.size > 0 and hi > 1000 and hi / max(pos.min(), 1.0) > 100
        if log:
            edges = np.concatenate([[0.0], log_edges(max(1.0, pos.min()), hi, SIGNAL_BINS - 1)])
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1, SIGNAL_BINS + 1)
        out.append(
            {
                "signal": name,
                "count": int(x.size),
                "log": bool(log),
                "edges": edges.tolist(),
                "counts": histogram(x, edges),
                "min": lo,
                "max": hi,
                "thresholds": [{**t, "fails": _fails(x, t)} for t in marks],
            }
        )
    return out


def dup_bins(sizes: np.ndarray) -> list[dict]:
    out = []
    for lo, hi in DUP_BINS:
        sel = (sizes >= lo) & (sizes <= hi) if hi is not None else sizes >= lo
        label = str(lo) if lo == hi else (f"{lo}-{hi}" if hi is not None else f"{lo}+")
        out.append({"label": label, "survivors": int(sel.sum()), "documents": int(sizes[sel].sum())})
    return out


def funnel(manifest: dict) -> list[dict]:
    """Per stage, in pipeline order: documents in, dropped (and quarantined), out; text bytes and
    tokens of what it dropped; its rules."""
    led = manifest.get("ledger", {})
    n = led.get("input", 0)
    out = []
    for name, s in (manifest.get("stages") or {}).items():
        quarantined = s.get("quarantined", 0)
        dropped = s.get("dropped", 0) + quarantined
        rules = [
            {
                "rule": r,
                "documents": c,
                "bytes": (s.get("rule_bytes") or {}).get(r),
                "tokens": (s.get("rule_tokens") or {}).get(r),
            }
            for r, c in s.get("rules", {}).items()
        ]
        if name == "normalize":
            rules += [
                {"rule": f"quarantine/{r}", "documents": c, "bytes": None, "tokens": None}
                for r, c in (manifest.get("quarantined") or {}).items()
            ]
        rules.sort(key=lambda r: (-r["documents"], r["rule"]))
        out.append(
            {
                "stage": name,
                "enabled": s.get("enabled"),
                "in": n,
                "dropped": dropped,
                "out": n - dropped,
                "bytes": s.get("dropped_bytes"),
                "tokens": s.get("dropped_tokens"),
                "rules": rules,
            }
        )
        n -= dropped
    return out


def share_rows(ins: dict, manifest: dict) -> list[dict]:
    """Every bucket (and group target) with its share and target: missed targets first, in the
    order inspect gives them (groups, then buckets), then the rest by target and share."""
    missed = {u["target"]: u for u in ins.get("targets_missed", [])}
    rows = []
    for g, v in (ins.get("groups") or {}).items():
        rows.append(
            {
                "name": g,
                "group": True,
                "share": v["share"],
                "target": v["target_share"],
                "documents": sum(ins["buckets"][b]["documents"] for b in v["buckets"] if b in ins["buckets"]),
                "tokens": sum(ins["buckets"][b]["tokens"] for b in v["buckets"] if b in ins["buckets"]),
                "buckets": v["buckets"],
            }
        )
    man_b = manifest.get("buckets") or {}
    names = sorted(set(ins["buckets"]) | set(man_b))
    for name in names:
        b = ins["buckets"].get(name)
        target = (b or {}).get("target_share", man_b.get(name, {}).get("target_share"))
        rows.append(
            {
                "name": name,
                "group": False,
                "share": b["share"] if b else 0.0,
                "target": target,
                "documents": b["documents"] if b else 0,
                "tokens": b["tokens"] if b else 0,
                "available": man_b.get(name, {}).get("available_documents"),
                "group_of": man_b.get(name, {}).get("group"),
            }
        )
    order = [u["target"] for u in ins.get("targets_missed", [])]
    for r in rows:
        u = missed.get(r["name"]) if (r["name"] in missed and missed[r["name"]]["group"] == r["group"]) else None
        r["missed"] = u is not None
        r["why"] = (u or {}).get("why")
    rows.sort(
        key=lambda r: (
            not r["missed"],
            order.index(r["name"]) if r["missed"] else 0,
            not r["group"],
            -(r["target"] or 0),
            -r["share"],
            r["name"],
        )
    )
    return rows


def collect(path: str, per_rule: int = EXAMPLES_PER_RULE) -> dict:
    """Everything the page shows, as plain data (the tests read it too)."""
    try:
        target = inspect_cmd.locate(path)
        if target.manifest is None:
            raise ReportError(
                f"{path}: no {schema.MANIFEST_NAME}: not a curate output (report reads a run's output directory)", 2
            )
        ins = inspect_cmd.inspect(path)
    except inspect_cmd.InspectError as e:
        raise ReportError(str(e), e.exit_code) from None
    manifest = target.manifest
    annotate = target.kind == schema.ANNOTATED_DIR
    signal_cols = []
    if annotate:
        signal_cols = sorted(
            {
                n
                for rel in _shards(target, target.kind)[:1]
                for n in pq.read_schema(target.fs.open_input_file(posixpath.join(target.root, rel))).names
                if n.startswith(schema.SIGNAL_PREFIX)
            }
        )
    rows = _rows(target, signal_cols)
    rows = rows.set_column(0, "bucket", pc.fill_null(rows.column("bucket"), inspect_cmd.NO_VALUE))

    buckets = share_rows(ins, manifest)
    tok, _ = inspect_cmd._values(rows.column("n_tokens"))
    len_edges = log_edges(float(tok.min()) if tok.size else 1.0, float(tok.max()) if tok.size else 10.0, LENGTH_BINS)
    per_bucket = []
    names = sorted({r["name"] for r in buckets if not r["group"]})
    bcol = rows.column("bucket")
    for name in names:
        part = rows.filter(pc.equal(bcol, name))
        if annotate:  # what filter mode would write
            part = part.filter(pc.is_null(part.column("drop_rule")))
        q, qn = inspect_cmd._values(part.column("quality_score"))
        n, _ = inspect_cmd._values(part.column("n_tokens"))
        per_bucket.append(
            {
                "bucket": name,
                "documents": part.num_rows,
                "quality": inspect_cmd.quality_histogram(q),
                "quality_count": int(q.size),
                "quality_nulls": qn,
                "length": {"bin_edges": len_edges.tolist(), "counts": histogram(n, len_edges)},
                "length_count": int(n.size),
            }
        )

    survivors = rows
    if annotate:  # dedup survivors: kept, or dropped after dedup (the mixture)
        dr = rows.column("drop_rule")
        survivors = rows.filter(pc.or_(pc.is_null(dr), pc.starts_with(pc.fill_null(dr, ""), "mixture/")))
    sizes, _ = inspect_cmd._values(survivors.column("dup_cluster_size"))
    stages = manifest.get("stages") or {}
    return {
        "path": path,
        "root": target.root,
        "kind": target.kind,
        "manifest": manifest,
        "problems": ins["problems"],
        "inspect": ins,
        "buckets": buckets,
        "per_bucket": per_bucket,
        "funnel": funnel(manifest),
        "examples": rejected_examples(target, per_rule),
        "signals": signal_stats(rows, signal_thresholds(manifest)) if annotate else [],
        "dedup": {
            "bins": dup_bins(sizes.astype(np.int64)),
            "survivors": int(sizes.size),
            "exact": stages.get("exact_dedup", {}).get("dropped", 0),
            "near": stages.get("minhash_dedup", {}).get("dropped", 0),
            "url": stages.get("url_dedup", {}).get("dropped", 0),
        },
    }


# ---------------------------------------------------------------------------------------- SVG


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def clean(text: str) -> str:
    """Document text for the page: controls shown as U+FFFD, then escaped."""
    return esc(_CONTROL.sub("\ufffd", text))


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _n(x) -> str:
    return "—" if x is None else f"{x:,}"


def svg_shares(rows: list[dict], width: int = 760) -> str:
    """Horizontal bars: achieved share (blue, red when the target is missed) and the target
    (an orange tick), on a square-root axis so that 0.2% and 75% both read."""
    left, right, rh = 150, 110, 16
    h = 28 + rh * len(rows)
    plot = width - left - right
    top = max([r["share"] for r in rows] + [r["target"] or 0 for r in rows] + [0.01])
    scale = lambda v: left + plot * math.sqrt(max(0.0, v) / top)  # noqa: E731
    out = [
        f'<svg class="chart shares" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}"'
        f' viewBox="0 0 {width} {h}" role="img"><title>token share by bucket: achieved vs target</title>'
    ]
    for t in (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0):
        if t <= top * 1.0001:
            x = scale(t)
            out.append(
                f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="{h - 4}" stroke="#ddd"/>'
                f'<text x="{x:.1f}" y="11" font-size="9" text-anchor="middle" fill="#666">{t * 100:g}%</text>'
            )
    for i, r in enumerate(rows):
        y = 18 + i * rh
        color = RED if r["missed"] else BLUE
        label = r["name"] + (" (group)" if r["group"] else "")
        bold = ' font-weight="bold"' if r["group"] else ""
        out.append(f'<text x="{left - 6}" y="{y + 11}" font-size="11" text-anchor="end"{bold}>{esc(label)}</text>')
        w = scale(r["share"]) - left
        out.append(
            f'<rect class="bar" x="{left}" y="{y + 2}" width="{max(w, 0):.1f}" height="{rh - 5}" fill="{color}"/>'
        )
        if r["target"] is not None:
            x = scale(r["target"])
            out.append(
                f'<line class="target" x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + rh - 1}"'
                f' stroke="{ORANGE}" stroke-width="3"/>'
            )
        out.append(
            f'<text x="{width - right + 6}" y="{y + 11}" font-size="10" fill="#333">'
            f"{_pct(r['share'])}{' / ' + _pct(r['target']) if r['target'] is not None else ''}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def svg_histogram(
    edges: list[float],
    counts: list[int],
    *,
    cls: str,
    title: str,
    width: int = 320,
    height: int = 120,
    color: str = GREEN,
    marks: list[dict] = (),
    log_x: bool = False,
    x_label: str = "",
) -> str:
    """A histogram (bars over `edges`), thresholds in `marks` as dashed red lines."""
    left, bottom, top_pad = 34, 24, 8
    pw, ph = width - left - 8, height - bottom - top_pad
    e = np.asarray(edges, dtype=float)
    if log_x:  # the first bin may start at 0 (zeros): draw it as wide as the next one
        pos = np.where(e > 0, e, np.nan)
        le = np.log10(pos)
        if np.isnan(le[0]):
            le[0] = le[1] - (le[2] - le[1] if len(le) > 2 else 1)
        xs = le
    else:
        xs = e
    x0, x1 = float(xs[0]), float(xs[-1])
    span = (x1 - x0) or 1.0
    sx = lambda v: left + pw * (v - x0) / span  # noqa: E731
    peak = max(counts) if counts and max(counts) > 0 else 1
    out = [
        f'<svg class="chart {esc(cls)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>',
        f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#999"/>',
        f'<text x="{left - 3}" y="{top_pad + 8}" font-size="9" text-anchor="end" fill="#666">{_fmt(peak)}</text>',
        f'<text x="{left - 3}" y="{top_pad + ph}" font-size="9" text-anchor="end" fill="#666">0</text>',
    ]
    for i, c in enumerate(counts):
        if c <= 0:
            continue
        a, b = sx(xs[i]), sx(xs[i + 1])
        bh = ph * c / peak
        out.append(
            f'<rect class="bar" x="{a:.1f}" y="{top_pad + ph - bh:.1f}" width="{max(b - a - 0.5, 0.8):.1f}"'
            f' height="{bh:.1f}" fill="{color}"><title>{_fmt(e[i])}..{_fmt(e[i + 1])}: {c:,}</title></rect>'
        )
    for v in (e[0], e[len(e) // 2], e[-1]):
        xv = math.log10(v) if log_x and v > 0 else (xs[0] if log_x else v)
        out.append(
            f'<text x="{sx(xv):.1f}" y="{height - 10}" font-size="9" text-anchor="middle" fill="#666">'
            f"{_fmt(float(v))}</text>"
        )
    if x_label:
        out.append(
            f'<text x="{left + pw}" y="{height - 1}" font-size="9" text-anchor="end" fill="#444">{esc(x_label)}</text>'
        )
    for m in marks:
        v = m["value"]
        xv = math.log10(v) if log_x and v > 0 else (xs[0] if log_x else v)
        x = min(max(sx(xv), left), left + pw)
        out.append(
            f'<line class="threshold" x1="{x:.1f}" y1="{top_pad - 4}" x2="{x:.1f}" y2="{top_pad + ph}"'
            f' stroke="{RED}" stroke-width="1.5" stroke-dasharray="4 2"><title>{esc(m["rule"])}:'
            f" {esc(m['side'])} {_fmt(v)}</title></line>"
        )
    out.append("</svg>")
    return "".join(out)


def svg_categories(
    labels: list[str], values: list[int], *, cls: str, title: str, width: int = 420, height: int = 140
) -> str:
    left, bottom, top_pad = 40, 22, 14
    pw, ph = width - left - 8, height - bottom - top_pad
    peak = max(values) if values and max(values) > 0 else 1
    bw = pw / max(1, len(values))
    out = [
        f'<svg class="chart {esc(cls)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>',
        f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#999"/>',
    ]
    for i, (lab, v) in enumerate(zip(labels, values)):
        x = left + i * bw
        bh = ph * v / peak
        if v:
            out.append(
                f'<rect class="bar" x="{x + 3:.1f}" y="{top_pad + ph - bh:.1f}" width="{bw - 6:.1f}"'
                f' height="{bh:.1f}" fill="{BLUE}"/>'
            )
        out.append(
            f'<text x="{x + bw / 2:.1f}" y="{top_pad + ph - bh - 3:.1f}" font-size="9" text-anchor="middle">'
            f'{v:,}</text><text x="{x + bw / 2:.1f}" y="{height - 8}" font-size="10" text-anchor="middle">'
            f"{esc(lab)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def svg_funnel(rows: list[dict], total: int, width: int = 220, height: int = 14) -> str:
    """One bar: the documents a stage lets through (blue) and drops (red), of all input."""
    total = max(total, 1)
    a = width * rows["out"] / total
    b = width * rows["dropped"] / total
    return (
        f'<svg class="chart funnel" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img"><title>{rows["out"]:,} through, {rows["dropped"]:,}'
        f' dropped</title><rect x="0" y="2" width="{a:.1f}" height="{height - 4}" fill="{BLUE}"/>'
        f'<rect x="{a:.1f}" y="2" width="{max(b, 1 if rows["dropped"] else 0):.1f}" height="{height - 4}"'
        f' fill="{RED}"/></svg>'
    )


# ---------------------------------------------------------------------------------------- HTML

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:24px auto;max-width:1200px;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right;
vertical-align:middle}
th{background:#f4f4f4;font-weight:600}td.l,th.l{text-align:left}
tr.missed td{background:#fdecea}tr.group td{font-weight:600}tr.rule td{color:#555;font-size:13px}
.meta{color:#555}.warn{background:#fff4e0;border-left:4px solid #e08a1e;padding:6px 10px;margin:8px 0}
.bad{background:#fdecea;border-left:4px solid #c0392b;padding:6px 10px;margin:8px 0}
.legend span{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.grid{display:flex;flex-wrap:wrap;gap:10px}.cell{border:1px solid #eee;padding:6px}
.example{border:1px solid #ddd;margin:6px 0;padding:6px 8px;background:#fafafa}
.example pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0 0;font:12px/1.35 ui-monospace,monospace;
max-height:9em;overflow:auto;unicode-bidi:isolate}
.example .id{font:12px ui-monospace,monospace;color:#555;unicode-bidi:isolate}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _header(data: dict) -> list[str]:
    from classifiers.tokens import label as tokenizer_label

    m = data["manifest"]
    led = m.get("ledger", {})
    vol = m.get("volume") or {}
    out = [
        f"<h1>curate report: {esc(data['path'])}</h1>",
        f'<p class="meta">{esc(m.get("mode"))} mode · runner {esc(m.get("runner"))}'
        f" · workers {esc(m.get('workers'))} · config sha256 {esc(str(m.get('config_sha256'))[:12])}"
        f" · tokenizer {esc(tokenizer_label(m.get('tokenizer')))}"
        f" · {esc(m.get('input_files', '?'))} input files, {_n(m.get('input_bytes'))} bytes</p>",
        f'<p class="meta ledger">input {_n(led.get("input"))} documents = '
        f"{'written' if m.get('mode') == 'annotate' else 'kept'} {_n(led.get('kept'))}"
        f" + rejected {_n(led.get('rejected'))} + quarantined {_n(led.get('quarantined'))}"
        f" ({'balanced' if led.get('balanced') else 'UNBALANCED'})"
        + (f" · {_n(vol.get('text_bytes'))} bytes of text read" if vol else "")
        + "</p>",
    ]
    if data["problems"]:
        out.append(
            '<div class="bad problems"><b>the files do not match the manifest</b> (curate inspect):<ul>'
            + "".join(f"<li>{esc(p['path'])}: {esc(p['problem'])}: {esc(p['detail'])}</li>" for p in data["problems"])
            + "</ul></div>"
        )
    return out


def _shares_section(data: dict) -> list[str]:
    rows = data["buckets"]
    annotate = data["kind"] == schema.ANNOTATED_DIR
    missed = [r for r in rows if r["missed"]]
    out = ['<h2 id="mixture">Mixture: token shares against targets</h2>']
    if annotate:
        out.append(
            '<p class="meta">annotate mode: shares are those of the mixture filter mode would write'
            " (repeats is 0 where it would drop a document); targets are not checked.</p>"
        )
    if missed:
        out.append(
            f'<div class="warn missed-summary">{len(missed)} target(s) missed by more than'
            f" {schema.SHARE_TOLERANCE * 100:g} points, listed first.</div>"
        )
    out.append(
        '<p class="legend"><span style="background:#3b6fb6"></span>achieved<span style="background:#c0392b">'
        '</span>achieved, target missed<span style="background:#e08a1e"></span>target'
        ' <span style="width:auto;margin-left:16px">(square-root axis)</span></p>'
    )
    out.append(svg_shares(rows))
    out.append(
        '<table class="buckets"><thead><tr><th class="l">bucket</th><th>documents</th><th>tokens</th>'
        '<th>share</th><th>target</th><th>gap (points)</th><th>available docs</th><th class="l">status</th>'
        "</tr></thead><tbody>"
    )
    for r in rows:
        gap = "—" if r["target"] is None else f"{(r['share'] - r['target']) * 100:+.2f}"
        cls = " ".join(
            c
            for c in (
                "bucket",
                "missed" if r["missed"] else "",
                "group" if r["group"] else "",
                "empty" if not r["documents"] else "",
            )
            if c
        )
        status = (
            ("missed" + (f": {r['why']}" if r["why"] else ""))
            if r["missed"]
            else ("no target" if r["target"] is None else "ok")
        )
        name = r["name"] + (f" (group: {len(r['buckets'])} buckets)" if r["group"] else "")
        out.append(
            f'<tr class="{cls}" data-bucket="{esc(r["name"])}"><td class="l">{esc(name)}</td>'
            f"<td>{r['documents']:,}</td><td>{r['tokens']:,}</td><td>{_pct(r['share'])}</td>"
            f"<td>{_pct(r['target'])}</td><td>{gap}</td><td>{_n(r.get('available'))}</td>"
            f'<td class="l">{esc(status)}</td></tr>'
        )
    out.append("</tbody></table>")
    return out


def _funnel_section(data: dict) -> list[str]:
    m = data["manifest"]
    verb = "would drop" if m.get("mode") == "annotate" else "dropped"
    total = (m.get("ledger") or {}).get("input", 0)
    out = [
        '<h2 id="stages">Documents and tokens per stage and rule</h2>',
        '<p class="meta">Bytes are UTF-8 text bytes. Tokens are known for the documents that were counted:'
        " those that passed language ID, heuristics and quality (every document in annotate mode);"
        ' "—" where none of a rule\'s documents were.</p>',
        f'<table class="funnel"><thead><tr><th class="l">stage / rule</th><th>in</th><th>{verb}</th><th>out</th>'
        f'<th>bytes {verb}</th><th>tokens {verb}</th><th class="l">through / {verb}</th></tr></thead><tbody>',
    ]
    for s in data["funnel"]:
        state = "" if s["enabled"] else " (off)"
        out.append(
            f'<tr class="stage" data-stage="{esc(s["stage"])}"><td class="l"><b>{esc(s["stage"])}</b>{state}</td>'
            f"<td>{s['in']:,}</td><td>{s['dropped']:,}</td><td>{s['out']:,}</td><td>{_n(s['bytes'])}</td>"
            f"<td>{_n(s['tokens'] or None) if s['tokens'] is not None else '—'}</td>"
            f'<td class="l">{svg_funnel(s, total)}</td></tr>'
        )
        for r in s["rules"]:
            out.append(
                f'<tr class="rule" data-rule="{esc(r["rule"])}"><td class="l">&nbsp;&nbsp;{esc(r["rule"])}</td>'
                f"<td></td><td>{r['documents']:,}</td><td></td><td>{_n(r['bytes'])}</td>"
                f"<td>{_n(r['tokens'])}</td><td></td></tr>"
            )
    kept = sum(r["tokens"] for r in data["buckets"] if not r["group"])
    out.append(
        f'<tr class="stage"><td class="l"><b>output</b></td><td></td><td></td>'
        f"<td>{(m.get('ledger') or {}).get('kept', 0):,}</td><td></td><td>{kept:,} tokens</td><td></td></tr>"
    )
    out.append("</tbody></table>")
    return out


def _examples_section(data: dict) -> list[str]:
    m = data["manifest"]
    annotate = data["kind"] == schema.ANNOTATED_DIR
    counts = {**(m.get("would_reject") if annotate else m.get("rejected") or {})}
    rt = m.get("rejected_text") or {}
    out = ['<h2 id="rejected">What each rule drops</h2>']
    if annotate:
        out.append('<p class="meta">From the annotated rows of each drop_rule, smallest id hashes first.</p>')
    elif rt.get("all"):
        out.append(
            '<p class="meta">output.rejected_text is on: every rejected row keeps its text; shown: the'
            " smallest id hashes of each rule.</p>"
        )
    elif rt.get("sample_per_rule"):
        out.append(
            f'<p class="meta">rejected/ keeps the text of {rt["sample_per_rule"]} documents per rule'
            f" (output.rejected_text_sample; smallest id hashes); shown: the first of them.</p>"
        )
    else:
        out.append(
            '<p class="warn">This run kept no rejected text (output.rejected_text_sample: 0 and'
            " output.rejected_text: false): rerun with either to see examples here.</p>"
        )
    for rule, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        ex = data["examples"].get(rule, [])
        out.append(
            f'<details class="rule-examples" data-rule="{esc(rule)}"{" open" if ex else ""}>'
            f"<summary>{esc(rule)}: {n:,} documents</summary>"
        )
        if not ex:
            out.append('<p class="meta">no text kept for this rule</p>')
        for r in ex:
            text = r["text"]
            more = len(text) - EXCERPT_CHARS
            extra = f"\n… ({more:,} more characters)" if more > 0 else ""
            detail = f" · detail {esc(r['detail'])}" if r.get("detail") else ""
            out.append(
                f'<div class="example"><div class="id">id <bdi>{clean(r["id"])}</bdi> · source'
                f" {esc(r.get('source'))}{detail} · {len(text):,} characters</div>"
                f"<pre>{clean(text[:EXCERPT_CHARS])}{esc(extra)}</pre></div>"
            )
        out.append("</details>")
    return out


def _distributions_section(data: dict) -> list[str]:
    annotate = data["kind"] == schema.ANNOTATED_DIR
    out = [
        '<h2 id="distributions">Quality score and length per bucket</h2>',
        '<p class="meta">Documents in the output'
        + (" that filter mode would keep" if annotate else "")
        + "; length in tokens (log axis, the same bins for every bucket).</p>",
        '<table class="dist"><thead><tr><th class="l">bucket</th><th>documents</th><th class="l">quality_score'
        ' (0-5)</th><th class="l">length (tokens)</th></tr></thead><tbody>',
    ]
    for b in data["per_bucket"]:
        if not b["documents"]:
            out.append(
                f'<tr data-bucket="{esc(b["bucket"])}"><td class="l">{esc(b["bucket"])}</td><td>0</td>'
                '<td class="l meta">empty</td><td></td></tr>'
            )
            continue
        q = b["quality"]
        qsvg = (
            svg_histogram(
                q["bin_edges"], q["counts"], cls="quality", title=f"quality score, {b['bucket']}", color=GREEN
            )
            if b["quality_count"]
            else f'<span class="meta">no scores ({b["quality_nulls"]:,} documents)</span>'
        )
        ln = b["length"]
        lsvg = svg_histogram(
            ln["bin_edges"],
            ln["counts"],
            cls="length",
            title=f"length in tokens, {b['bucket']}",
            color=BLUE,
            log_x=True,
        )
        out.append(
            f'<tr data-bucket="{esc(b["bucket"])}"><td class="l">{esc(b["bucket"])}</td>'
            f'<td>{b["documents"]:,}</td><td class="l">{qsvg}</td><td class="l">{lsvg}</td></tr>'
        )
    out.append("</tbody></table>")
    return out


def _signals_section(data: dict) -> list[str]:
    out = ['<h2 id="signals">Heuristic signals and their thresholds</h2>']
    if data["kind"] != schema.ANNOTATED_DIR:
        out.append(
            '<p class="meta">Annotate mode writes every heuristic signal of every document'
            " (<code>curate run --set mode=annotate</code>); its report draws each one with the"
            " thresholds marked, which is how thresholds are tuned.</p>"
        )
        return out
    out.append(
        '<p class="meta">Every document the heuristics measured; red dashed lines: the thresholds of'
        " this run's config, with how many documents fail each (a document fails on its first rule"
        ' only in the ledger).</p><div class="grid">'
    )
    for s in data["signals"]:
        fails = "".join(
            f'<div class="threshold-note">{esc(t["rule"])}: {esc(t["side"])} {_fmt(t["value"])}'
            f" → {t['fails']:,} fail</div>"
            for t in s["thresholds"]
        )
        out.append(
            f'<div class="cell signal" data-signal="{esc(s["signal"])}"><h3>{esc(s["signal"])}</h3>'
            + svg_histogram(
                s["edges"],
                s["counts"],
                cls="signal",
                title=s["signal"],
                width=340,
                marks=s["thresholds"],
                log_x=s["log"],
                color=GREY,
                x_label="log axis" if s["log"] else "",
            )
            + f'<div class="meta">{s["count"]:,} documents</div>{fails}</div>'
        )
    out.append("</div>")
    return out


def _dedup_section(data: dict) -> list[str]:
    d = data["dedup"]
    out = [
        '<h2 id="dedup">Duplicate clusters</h2>',
        f'<p class="meta">Dedup dropped {d["url"]:,} (URL), {d["exact"]:,} (exact) and {d["near"]:,}'
        f" (MinHash) documents. Each survivor stands for a cluster of near-duplicates"
        f" (dup_cluster_size); {d['survivors']:,} survivors by cluster size:</p>",
        svg_categories(
            [b["label"] for b in d["bins"]],
            [b["survivors"] for b in d["bins"]],
            cls="dup",
            title="survivors by duplicate cluster size",
        ),
        '<table class="dup"><thead><tr><th class="l">cluster size</th><th>survivors</th>'
        "<th>documents they stood for</th></tr></thead><tbody>",
    ]
    for b in d["bins"]:
        out.append(
            f'<tr><td class="l">{esc(b["label"])}</td><td>{b["survivors"]:,}</td><td>{b["documents"]:,}</td></tr>'
        )
    out.append("</tbody></table>")
    return out


def render_html(data: dict) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        *_header(data),
        *_shares_section(data),
        *_funnel_section(data),
        *_examples_section(data),
        *_distributions_section(data),
        *_signals_section(data),
        *_dedup_section(data),
        f'<p class="meta">written by curate report, {now}</p>',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>curate report: {esc(data['path'])}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(path: str, dest: str | None = None, per_rule: int = EXAMPLES_PER_RULE) -> tuple[str, dict]:
    data = collect(path, per_rule)
    if dest is None:
        if "://" in path:
            raise ReportError(f"{path}: a remote output: name a local file with -o", 2)
        dest = os.path.join(data["root"], REPORT_NAME)
    page = render_html(data)
    tmp = f"{dest}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, dest)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ReportError(f"-o {dest}: {e.strerror or e}", 2) from None
    return dest, data


# ---------------------------------------------------------------------------------------- CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write one self-contained HTML page about a finished run",
        description="Mixture shares against targets (missed first, every bucket), documents/bytes/tokens per"
        " stage and rule, sampled rejected documents per rule, quality and length histograms per"
        " bucket, heuristic signals with their thresholds (annotate mode) and duplicate cluster"
        " sizes, as one HTML file with inline SVG (no script, no network).",
    )
    p.add_argument("path", metavar="OUT", help="a curate output directory")
    p.add_argument(
        "-o",
        "--output",
        dest="report_output",
        metavar="FILE",
        help=f"where to write the page (default OUT/{REPORT_NAME})",
    )
    p.add_argument(
        "--examples",
        type=int,
        default=EXAMPLES_PER_RULE,
        metavar="N",
        help=f"rejected examples shown per rule (default {EXAMPLES_PER_RULE})",
    )
    return p


def cmd_report(args) -> int:
    try:
        dest, data = write_report(args.path, args.report_output, max(0, args.examples))
    except ReportError as e:
        print(f"report: {e}", file=sys.stderr)
        return e.exit_code
    for p in data["problems"]:
        print(f"mismatch: {p['path']}: {p['problem']}: {p['detail']}", file=sys.stderr)
    print(dest)
    return 1 if data["problems"] else 0
