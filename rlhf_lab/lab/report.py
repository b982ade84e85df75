"""A lab report: markdown sections and a JSON of the figures, written atomically."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab.run import status, write_json, write_text


@dataclass
class Report:
    title: str
    out: Path
    figures: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    def table(self, header: list[str], rows: list[list]) -> None:
        def fmt(v):
            return f"{v:.3f}" if isinstance(v, float) else str(v)
        self.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
        self.lines.append("")

    def image(self, filename: str, caption: str) -> None:
        self.lines += [f"![{caption}]({filename})", ""]

    def write(self) -> dict:
        write_text(self.out / "report.md", "\n".join([f"# {self.title}", ""] + self.lines) + "\n")
        write_json(self.out / "report.json", self.figures)
        status(f"{self.title}: report at {self.out / 'report.md'}")
        return self.figures



def run_history(run: Path) -> list[dict]:
    """The step log of a run directory."""
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def plot_runs(runs: dict[str, Path], keys: list[str], path: Path, title: str) -> None:
    """Curves of several runs' metrics.jsonl, one panel per metric, one line per run."""
    from rlhf_lab.evaluate import pyplot
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    for label, run in runs.items():
        history = run_history(run)
        for ax, key in zip(axes[0], keys):
            ax.plot([h["step"] for h in history], [h[key] for h in history], label=label)
            ax.set_title(key)
            ax.set_xlabel("iteration")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
