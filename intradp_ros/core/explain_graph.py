"""explain(graph): a readable table of operators, their kinds and split axes, and why globals are global."""

from __future__ import annotations

from collections import Counter

from intradp_ros.core.graph import Graph


def explain(graph: Graph, show_nodes: bool = True, quiet: bool = False) -> str:
    """Print (unless `quiet`) and return per-operator kinds, local/global counts and the reason for each
    global operator. Graph inputs are listed but not counted as operators."""
    lines: list[str] = []
    if show_nodes:
        lines.append(f"{'idx':>4} {'kind':<11} {'op':<20} {'axis':>4} {'rows':>5} {'shape':<22} name")
        for n in graph.nodes:
            kind = "input" if n.is_input else n.kind
            ax = "-" if n.axis is None else str(n.axis)
            lines.append(
                f"{n.index:>4} {kind:<11} {n.op[:20]:<20} {ax:>4} {n.extent:>5} {str(list(n.shape))[:22]:<22} "
                f"{n.name}" + (f"   <- global: {n.reason}" if n.kind == "global" else "")
            )
    counts = graph.counts()
    local = counts["elementwise"] + counts["block"] + counts["row"]
    lines.append(
        f"graph {graph.fingerprint} captured by {graph.method}: {local} local operators "
        f"({counts['elementwise']} element-wise, {counts['block']} block, {counts['row']} row-wise), "
        f"{counts['global']} global"
    )
    reasons = Counter(n.reason for n in graph.nodes if n.kind == "global")
    for reason, k in reasons.most_common():
        lines.append(f"  global x{k}: {reason}")
    text = "\n".join(lines)
    if not quiet:
        print(text)
    return text
