"""Draws the delivery dashboard's panels from real data: a Pushgateway and a Prometheus on 127.0.0.1 (the
Debian packages), a few minutes of releases pushed by the release workflow's own push step (some failing,
two followed by a page alert), then every panel's queries, as the dashboard holds them, over that time.

    .venv/bin/pip install matplotlib
    .venv/bin/python tools/delivery_dashboard.py docs/delivery-dashboard.png

It takes about four minutes. The measures count over 30 days, so a few minutes of releases show as a
high deployment frequency; the evaluation interval is 1s and the failure window 1m to make it fit.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.delivery.dashboard import grafana_dashboard
from tests.delivery.live import ReleaseSequence, query, release_sequence
from tests.live import HTTP_TIMEOUT

OK = "success " * 8
FAILED = "success failure skipped skipped skipped skipped skipped success"
# (run id, results, commit age in seconds, page seconds after it, pause after it)
RELEASES = (
    (1, OK, 5 * 3600, 0, 15),
    (2, OK, 26 * 3600, 0, 15),
    (3, FAILED, 2 * 3600, 0, 15),
    (4, OK, 9 * 3600, 20, 30),
    (5, OK, 3 * 3600, 0, 15),
    (6, FAILED, 4 * 3600, 0, 15),
    (7, OK, 50 * 3600, 0, 15),
    (8, OK, 6 * 3600, 40, 30),
    (9, OK, 2 * 3600, 0, 20),
)


def page(sequence: ReleaseSequence, seconds: float) -> None:
    sequence.start_page()
    time.sleep(seconds)
    sequence.end_page()


def query_range(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = {"query": expr, "start": start, "end": end, "step": 2}
    response = requests.get(f"{url}/api/v1/query_range", params=params, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def scale(unit: str) -> tuple[float, str]:
    return {"s": (60.0, "minutes (log)"), "percentunit": (0.01, "%"), "none": (1.0, "per day")}[unit]


def draw(out: Path, dashboard: dict[str, Any], prometheus: str, start: float, end: float) -> None:
    panels = [p for p in dashboard["panels"] if p["type"] == "timeseries"]
    [table] = [p for p in dashboard["panels"] if p["type"] == "table"]
    figure = plt.figure(figsize=(14, 11))
    grid = figure.add_gridspec(3, 2, height_ratios=[1, 1, 1.1])
    colors = {"yellow level": "#e0b400", "red level": "#d62728"}
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(grid[index // 2, index % 2])
        divisor, unit = scale(panel["fieldConfig"]["defaults"]["unit"])
        for target in panel["targets"]:
            for series in query_range(prometheus, target["expr"], start, end):
                name = legend(target["legendFormat"], series["metric"])
                xs = [(float(t) - start) / 60 for t, _ in series["values"]]
                ys = [float(v) / divisor for _, v in series["values"]]
                style = {"color": colors[name], "linestyle": "--"} if name in colors else {"linewidth": 2}
                axes.plot(xs, ys, label=name, **style)
        if panel["fieldConfig"]["defaults"]["unit"] == "s":
            axes.set_yscale("log")  # seconds-long pages and month-long levels on one axis
        axes.set_title(panel["title"], fontsize=11)
        axes.set_ylabel(unit)
        axes.set_xlabel("minutes")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="upper left")
    axes = figure.add_subplot(grid[2, :])
    axes.axis("off")
    rows = []
    for series in query(prometheus, table["targets"][0]["expr"]):
        labels = series["metric"]
        ended = datetime.fromtimestamp(float(series["value"][1]), UTC).strftime("%H:%M:%S")
        rows.append([ended, labels["service"], labels["release"], labels["version"], labels["outcome"]])
    rows.sort(reverse=True)
    cells = axes.table(
        cellText=rows[:10],
        colLabels=["ended (UTC)", "service", "release", "version", "outcome"],
        loc="upper center",
        cellLoc="left",
    )
    for (row, _), cell in cells.get_celld().items():
        if row > 0 and rows[row - 1][4] != "success":
            cell.set_facecolor("#fde0dd")
    axes.set_title(table["title"], fontsize=11)
    figure.suptitle(dashboard["title"] + ": panels from a live Prometheus", fontsize=13)
    figure.tight_layout()
    figure.savefig(out, dpi=80)


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        with release_sequence(directory) as sequence, sequence.prometheus() as prometheus:
            start = time.time()
            for run_id, results, age, paged, pause in RELEASES:
                outcome = sequence.release(run_id, results, age)
                print(f"release {run_id}: exit {outcome.returncode}", flush=True)
                if paged:
                    time.sleep(3)
                    page(sequence, paged)
                time.sleep(pause)
            draw(out, grafana_dashboard(sequence.config), prometheus.url, start, time.time())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/delivery-dashboard.png"))
