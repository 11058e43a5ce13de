"""Training-loop pieces shared by the landform trainers (pits, craters, mounds, ice).

One implementation of the optimiser set-up (AdamW + one-cycle), the optimiser step, the
"evaluate every N steps and at the end" rule and the best-checkpoint bookkeeping, so a
trainer differs from another only in its data, loss and validation score. The pieces
consume no random numbers: a seeded trainer draws exactly what it drew before.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def adamw_one_cycle(params: Iterable[nn.Parameter], lr: float, steps: int, pct_start: float
                    ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR]:
    """AdamW (weight decay 1e-4) with a one-cycle schedule peaking at ``lr``."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=pct_start)
    return opt, sched


def optimizer_step(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                   loss: torch.Tensor, clip: tuple[Iterable[nn.Parameter], float] | None = None
                   ) -> None:
    """Back-propagate ``loss``, clip the gradient norm of ``clip = (params, max_norm)``
    when given, step the optimiser and the schedule."""
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip[0], clip[1])
    opt.step()
    sched.step()


def eval_due(step: int, steps: int, every: int) -> bool:
    """Validation runs every ``every`` steps and after the last one."""
    return step % every == 0 or step == steps


class BestState:
    """The best-scoring weights seen so far: a strictly higher score replaces them (the
    earliest of equal scores stays). ``floor``: a score must exceed it to count at all;
    ``None`` takes the first offer whatever its score."""

    def __init__(self, floor: float | None = None) -> None:
        self.score = floor
        self.step = 0
        self.state: dict[str, torch.Tensor] | None = None
        self.extra: dict[str, Any] = {}

    def offer(self, score: float, step: int, module: nn.Module, **extra: Any) -> bool:
        """Keep a copy of ``module``'s weights (and ``extra``) when ``score`` is the best."""
        if self.score is not None and not score > self.score:
            return False
        self.score, self.step, self.extra = score, step, extra
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return True

    def restore(self, module: nn.Module) -> bool:
        """Load the kept weights into ``module``; False when nothing was kept."""
        if self.state is None:
            return False
        module.load_state_dict(self.state)
        return True


def train_best(module: nn.Module, steps: int, lr: float, batch_loss: Callable[[], torch.Tensor],
               validate: Callable[[], float], score_name: str, eval_every: int, t0: float,
               pct_start: float = 0.15) -> tuple[list[dict[str, Any]], int]:
    """The simulated-scene loop (mounds, ice): ``batch_loss()`` per step, ``validate()``
    when due; the history records the mean loss of the last 50 steps and the score as
    ``score_name``. Leaves ``module`` at its best validation state; returns the history
    and the best step."""
    opt, sched = adamw_one_cycle(module.parameters(), lr, steps, pct_start)
    history: list[dict[str, Any]] = []
    best = BestState()
    losses: list[float] = []
    for step in range(1, steps + 1):
        module.train()
        loss = batch_loss()
        optimizer_step(opt, sched, loss)
        losses.append(float(loss.detach()))
        if eval_due(step, steps, eval_every):
            score = validate()
            history.append({"step": step, "loss": round(float(np.mean(losses[-50:])), 4),
                            score_name: score, "seconds": round(time.time() - t0, 1)})
            print(json.dumps(history[-1]), file=sys.stderr, flush=True)
            best.offer(score, step, module)
    if not best.restore(module):
        raise RuntimeError("no evaluation ran")
    return history, best.step


def simulated_cli(train: Callable[[str, Path, int, int], dict[str, Any]], doc: str | None,
                  steps: int, n_train: int, weights_dir: Path,
                  argv: Sequence[str] | None = None) -> int:
    """The command line of a simulated-scene trainer: ``--version`` (required),
    ``--steps``, ``--n-train``, ``--out``; prints the card's metrics."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    p.add_argument("--version", required=True)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--n-train", type=int, default=n_train)
    p.add_argument("--out", type=Path, default=weights_dir)
    args = p.parse_args(argv)
    card = train(args.version, args.out, args.steps, args.n_train)
    print(json.dumps(card["metrics"], indent=1))
    return 0


def evaluate_cli(evaluate: Callable[..., dict[str, Any]], doc: str | None,
                 counts: dict[str, int], name: str, weights_dir: Path,
                 newest: Callable[[], str], argv: Sequence[str] | None = None) -> int:
    """The command line of a simulated-scene test: ``--weights`` (default newest), one
    integer option per ``counts`` entry (``--n-full`` -> the next positional argument of
    ``evaluate``), ``--update-card`` to write the result as the card's ``metrics.test``."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    p.add_argument("--weights", default=None, help="model version (default newest)")
    for option, default in counts.items():
        p.add_argument(option, type=int, default=default)
    p.add_argument("--update-card", action="store_true")
    args = p.parse_args(argv)
    result = evaluate(args.weights, *(getattr(args, o.lstrip("-").replace("-", "_"))
                                      for o in counts))
    print(json.dumps(result, indent=1))
    if args.update_card:
        card_path = weights_dir / f"{name}-{args.weights or newest()}.json"
        card = json.loads(card_path.read_text())
        card.setdefault("metrics", {})["test"] = result
        card_path.write_text(json.dumps(card, indent=1) + "\n")
    return 0


def detector_parser(description: str, seed: int, steps: int, weights_dir: Path,
                    threads: bool = True) -> argparse.ArgumentParser:
    """The options every detector trainer takes: ``--version`` (required), ``--seed``,
    ``--steps``, ``--out`` and, with ``threads``, ``--threads`` (default 2)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--version", required=True)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--out", type=Path, default=weights_dir)
    if threads:
        ap.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (1 on a machine shared with other jobs)")
    return ap
