"""A PNG of the Grafana dashboard (cluster/grafana/mmserve.json) from a live Prometheus: the
same panel queries, over a time range, one subplot per panel, titled like the panels, in rows
as on the dashboard. For a README picture, or a look without Grafana:

    python -m cluster.dashboard_png --prometheus http://127.0.0.1:9090 --minutes 10 \\
        --out docs/images/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.dashboard import OUT as DASHBOARD
from cluster.dashboard import panel_targets, substitute

# Units of the dashboard's panels as matplotlib axis labels (and a scale).
UNITS = {"s": ("seconds", 1), "reqps": ("per second", 1), "percentunit": ("%", 100),
         "short": ("", 1), "suffix: tok/s": ("tokens / s", 1)}


def prometheus_api(url: str, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
    """One call of Prometheus's HTTP API (/api/v1/ENDPOINT): its `data`, or a RuntimeError
    carrying Prometheus's error."""
    request = f"{url.rstrip('/')}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
    if body.get("status") != "success":
        raise RuntimeError(f"{params.get('query')}: {body.get('error', body)}")
    return body["data"]


def legend(template: str, labels: dict[str, str]) -> str:
    for name, value in labels.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def render(board: dict, prometheus: str, start: float, end: float, out: Path,
           variables: dict[str, str] | None = None, columns: int = 4) -> int:
    """Plots every panel of `board`; returns how many panels had no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    # Each dashboard row starts a new line of subplots, its title above its first panel.
    places, row_titles, line = [], {}, 0
    for row_title, panels in _rows(board):
        row_titles[line] = row_title
        for i, panel in enumerate(panels):
            places.append((line + i // columns, i % columns, panel))
        line += math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(line, columns, figsize=(4.2 * columns, 2.7 * line),
                                squeeze=False)
    step = max(1.0, (end - start) / 240)
    empty = 0
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, panel in ((axes[r][c], panel) for r, c, panel in places):
        ax.set_visible(True)
        ax.set_xlim(datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(end, tz=UTC))
        label, scale = UNITS.get(panel["fieldConfig"]["defaults"]["unit"], ("", 1))
        drawn = 0
        for target in panel["targets"]:
            result = prometheus_api(prometheus, "query_range", {
                "query": substitute(target["expr"], variables), "start": f"{start:.3f}",
                "end": f"{end:.3f}", "step": f"{step}"})["result"]
            for series in result:
                points = [(float(t), float(v) * scale) for t, v in series["values"]
                          if not math.isnan(float(v))]
                if points:
                    times, values = zip(*points, strict=True)
                    ax.plot([datetime.fromtimestamp(t, tz=UTC) for t in times],
                            values, linewidth=1, marker="o" if len(values) < 3 else None,
                            markersize=2,
                            label=legend(target["legendFormat"], series["metric"]))
                    drawn += 1
        ax.set_title(panel["title"], fontsize=9)
        ax.set_ylabel(label, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        if drawn:
            ax.legend(fontsize=5, loc="upper left", ncol=1 + drawn // 6, frameon=False)
        else:
            empty += 1
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    fontsize=8, color="grey")
    figure.suptitle(f"{board['title']}: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))}"
                    f" to {time.strftime('%H:%M', time.gmtime(end))} UTC", fontsize=11)
    figure.tight_layout(h_pad=2.2, rect=(0, 0, 1, 1 - 0.5 / (2.7 * line)))
    for line, row_title in row_titles.items():
        top = axes[line][0].get_position().y1
        figure.text(0.005, top + 0.022, row_title, fontsize=10, fontweight="bold")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return empty


def _rows(board: dict) -> list[tuple[str, list[dict]]]:
    """(row title, its panels) in dashboard order."""
    rows: list[tuple[str, list[dict]]] = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            rows.append((panel["title"], []))
        elif rows:
            rows[-1][1].append(panel)
        else:
            rows.append(("", [panel]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--minutes", type=float, default=10, help="the range, ending now")
    parser.add_argument("--application", default=".*", help="Serve application (regex)")
    args = parser.parse_args(argv)
    board = json.loads(args.dashboard.read_text())
    end = time.time()
    empty = render(board, args.prometheus, end - args.minutes * 60, end, args.out,
                   {"application": args.application})
    total = len(panel_targets(board))
    print(f"wrote {args.out} ({empty} panels without data; {total} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
