"""The end-of-run summary, printed from the manifest (the same numbers a user finds on disk)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def timing(seconds: float, startup: float | None = None) -> str:
    """`in 35.2 s (start-up 12.1 s)`: wall time from the start of the command, and the part of
    it before the first document was read (imports, config, demo corpus, tokenizer, workers)."""
    return f"in {seconds:.1f} s" + (f" (start-up {startup:.1f} s)" if startup is not None else "")


def print_summary(
    manifest: dict, out_path: str, seconds: float, startup: float | None = None, console: Console | None = None
) -> None:
    """`seconds`: wall time since the command started; `startup`: the part of it before the
    first document was read."""
    console = console or Console(width=None if Console().is_terminal else 120)
    led = manifest["ledger"]
    t = Table(title=f"curate run — {manifest['mode']} mode, {manifest.get('runner', '')}", title_justify="left")
    dropped_col = "would drop" if manifest["mode"] == "annotate" else "dropped"
    for col in ("stage", "status", dropped_col, "top rules"):
        t.add_column(col, justify="right" if col == dropped_col else "left")
    t.add_row("read", "", "", f"{led['input']:,} records from {manifest.get('input_files', '?')} files")
    for name, s in manifest["stages"].items():
        status = "on" if s["enabled"] else "disabled in config"
        dropped = s["dropped"] + s.get("quarantined", 0)
        rules = dict(s["rules"])
        if name == "normalize":
            rules.update({f"quarantine/{k}": v for k, v in manifest["quarantined"].items()})
        top = ", ".join(f"{r} {c:,}" for r, c in sorted(rules.items(), key=lambda kv: -kv[1])[:3])
        t.add_row(name, status, f"{dropped:,}", top)
    verb = "written (annotated)" if manifest["mode"] == "annotate" else "kept"
    t.add_row(
        "ledger",
        "balanced" if led["balanced"] else "UNBALANCED",
        "",
        f"input {led['input']:,} = {verb} {led['kept']:,} + rejected {led['rejected']:,}"
        f" + quarantined {led['quarantined']:,}",
    )
    console.print(t)
    dup = manifest.get("duplicate_ids") or {}
    if dup.get("ids"):
        console.print(
            f"[yellow]duplicate ids[/]: {dup['ids']:,} ids are each held by more than one input document"
            f' ({dup["documents"]:,} documents; 42 and "42" are the same id)'
        )
    q = manifest["stages"].get("quality", {})
    if q.get("enabled") and q.get("threshold"):
        thr = ", ".join(f"{b} {v:.3f}" for b, v in q["threshold"].items())
        console.print(f"quality thresholds: {thr} ({q.get('threshold_source', '')})")
    if manifest["mode"] == "filter":
        b = Table(title="mixture by bucket", title_justify="left")
        for col in ("bucket", "documents", "tokens", "target", "achieved", "shards"):
            b.add_column(col, justify="left" if col == "bucket" else "right")
        for name, v in manifest["buckets"].items():
            if not v["documents"] and not v.get("target_share"):
                continue
            b.add_row(
                name,
                f"{v['documents']:,}",
                f"{v['tokens']:,}",
                _pct(v.get("target_share")),
                _pct(v.get("achieved_share")),
                str(v["shards"]),
            )
        console.print(b)
        mix = manifest["mixture"]
        from classifiers.tokens import label

        tok = label(manifest.get("tokenizer"))
        console.print(f"tokens: {mix['total_tokens']:,} ({tok}); mixture size limited by: {mix['limited_by'] or '-'}")
        groups = mix.get("groups") or {}
        if groups:
            console.print(
                "groups: "
                + ", ".join(
                    f"{g} {_pct(v['achieved_share'])} (target {_pct(v['target_share'])}, {len(v['buckets'])} buckets)"
                    for g, v in groups.items()
                )
            )
        for u in mix["unmet"]:  # group targets first
            what = f"{u['bucket']} (group)" if u.get("group") else u["bucket"]
            console.print(
                f"[yellow]target not met[/]: {what}: asked {_pct(u['asked'])},"
                f" achieved {_pct(u['achieved'])} — {u['why']}"
            )
    from pipeline.outdir import RUN_LOG

    console.print(
        f"output: {out_path} ({len(manifest['shards'])} shards, manifest.json, {RUN_LOG}) {timing(seconds, startup)}"
    )
