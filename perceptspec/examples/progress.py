"""What the training examples show while they run and leave behind: a progress bar over the step budget, one log
line per evaluation, and a learning curve (`learning_curve.png`, its numbers in `learning_curve.csv`) in the run's
output directory, written after every evaluation so that it is there even if the run is stopped."""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from types import TracebackType

import matplotlib
from tqdm import tqdm

matplotlib.use("Agg")  # files only: no display needed

from matplotlib import pyplot  # noqa: E402  (after choosing the backend)

__all__ = ["TrainingProgress", "training_arguments"]


def training_arguments(description: str | None, *, budget: tuple[str, int], eval_every: int, eval_episodes: int,
                       target: float, out: str) -> argparse.ArgumentParser:
    """The command line every training example shares: --seed, the step budget (`budget`: its flag and default),
    --eval-every, --eval-episodes, --target (the mean evaluation return that ends the run) and --out (where the
    learning curve goes); an example adds its own arguments to the parser."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(budget[0], type=int, default=budget[1])
    parser.add_argument("--eval-every", type=int, default=eval_every)
    parser.add_argument("--eval-episodes", type=int, default=eval_episodes)
    parser.add_argument("--target", type=float, default=target)
    parser.add_argument("--out", type=Path, default=Path(out), help="for the learning curve")
    return parser


class TrainingProgress:
    """A progress bar over `total` steps (`unit`: 'steps' or 'frames') and the learning curve of the evaluations."""

    def __init__(self, title: str, total: int, unit: str, out_dir: Path, target: float) -> None:
        self.title, self.unit, self.target = title, unit, target
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.points: list[tuple[int, float, float]] = []  # (steps, seconds, mean eval return)
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, unit=f" {unit}", unit_scale=True, dynamic_ncols=True, leave=False,
                        desc=title)

    def advance(self, steps: int) -> None:
        """Move the bar to `steps` done."""
        self.bar.update(max(0, steps - self.bar.n))

    def log(self, line: str) -> None:
        """A line above the bar."""
        self.bar.write(line)

    def evaluated(self, steps: int, mean_return: float, detail: str = "") -> None:
        """Record an evaluation: a log line, a point on the curve, the files rewritten."""
        seconds = self.elapsed()
        self.points.append((steps, seconds, mean_return))
        self.bar.set_postfix_str(f"eval return {mean_return:.1f}")
        self.log(f"{self.unit} {steps:>7,}  wall {seconds:6.1f} s  {detail}eval return {mean_return:6.1f}")
        self.write_curve()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def curve_png(self) -> Path:
        return self.out_dir / "learning_curve.png"

    def write_curve(self) -> None:
        """learning_curve.csv and learning_curve.png: mean evaluation return against steps, with the target."""
        with open(self.out_dir / "learning_curve.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow([self.unit, "seconds", "mean_eval_return"])
            writer.writerows((s, f"{t:.2f}", f"{r:.2f}") for s, t, r in self.points)
        figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
        axes.plot([p[0] for p in self.points], [p[2] for p in self.points], marker="o", label="evaluation")
        axes.axhline(self.target, color="grey", linestyle="--", label=f"target {self.target:g}")
        axes.set_xlabel(self.unit)
        axes.set_ylabel("mean return")
        axes.set_title(self.title)
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(self.curve_png)
        pyplot.close(figure)

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bar.close()
