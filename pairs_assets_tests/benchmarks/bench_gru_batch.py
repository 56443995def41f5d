"""Benchmark: GRU training one pair at a time (``fit_pair_model``) vs batched (``fit_pair_models``).

Run: ``.venv/bin/python pairs_assets_tests/benchmarks/bench_gru_batch.py [--pairs 16] [--sessions 1300] [--repeats 1]``

Real data: same-sector pairs of the embedded S&P 500 closes (the last ``--sessions`` sessions up to
2022-12-28; spread by OLS over the window, GARCH(1,1) σ and residuals from arch — bench_gru.py's
inputs), default GRU hyperparameters (hidden 64, up to 50 epochs, early stopping). For batch sizes
1, 4 and all pairs: wall seconds per pair of one-at-a-time and of batched training (medians of
``--repeats``), and the agreement of the two (test F1, ROC AUC, threshold, best epoch). CUDA rows
when a GPU is present. Prints a table; asserts nothing (the tests check agreement).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from pairs_assets.quant.gru import GRUConfig, fit_pair_model, fit_pair_models  # noqa: E402
from pairs_assets_tests.benchmarks.bench_gru import pair_inputs  # noqa: E402

SECTORS = {
    "consumer": ["KO", "PEP", "PG", "WMT", "HD", "BBY"],
    "healthcare": ["JNJ", "LLY", "MRK", "PFE", "UNH"],
    "energy": ["XOM", "CVX", "RRC"],
    "technology": ["AAPL", "MSFT", "AMD"],
}


def real_pairs(n: int, sessions: int) -> list[dict]:
    """The first ``n`` same-sector pairs whose slices have both label classes (trainable)."""
    names = [f"{y}-{x}" for symbols in SECTORS.values() for y, x in itertools.combinations(symbols, 2)]
    items = []
    for name in names:
        spread, sigma, resid = pair_inputs(*name.split("-"), sessions)
        items.append(
            {"spread": spread, "garch_sigma": sigma, "garch_std_resid": resid, "entry_z": 2.0, "pair_id": name}
        )
    checked = fit_pair_models(items, GRUConfig(max_epochs=1, hidden=4))
    return [item for item, result in zip(items, checked) if not isinstance(result, Exception)][:n]


def timed(function, repeats: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=1300)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    items = real_pairs(args.pairs, args.sessions)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}; {len(items)} real pairs, {args.sessions} sessions; defaults {GRUConfig()}; "
        f"medians of {args.repeats} repeat(s)"
    )
    header = (
        f"{'device':<6} {'batch':>5} {'one-at-a-time s/pair':>21} {'batched s/pair':>15} {'speed-up':>9} "
        f"{'max|dF1|':>9} {'max|dAUC|':>10} {'max|dthr|':>10} {'same best epoch':>16}"
    )
    print(header)
    print("-" * len(header))
    for device in devices:
        config = GRUConfig(device=device)
        fit_pair_models(items[:1], GRUConfig(device=device, max_epochs=1))  # warm-up (first-call costs)

        def kwargs(item):
            return {k: v for k, v in item.items() if k not in ("spread", "garch_sigma", "garch_std_resid", "entry_z")}

        alone = {}
        for size in sorted({1, min(4, len(items)), len(items)}):
            batch = items[:size]
            missing = [i for i in batch if i["pair_id"] not in alone]
            one_s, ones = timed(
                lambda: [
                    fit_pair_model(
                        i["spread"], i["garch_sigma"], i["garch_std_resid"], i["entry_z"], config, **kwargs(i)
                    )
                    for i in missing
                ],
                args.repeats,
            )
            if missing:
                per_pair_one = one_s / len(missing)
                alone.update({i["pair_id"]: r for i, r in zip(missing, ones)})
                alone_rate = per_pair_one
            many_s, many = timed(lambda: fit_pair_models(batch, config), args.repeats)
            pairs = [(alone[i["pair_id"]], m) for i, m in zip(batch, many)]
            f1 = max(abs(a.metrics["test"]["f1"] - b.metrics["test"]["f1"]) for a, b in pairs)
            auc = max(abs(a.metrics["test"]["roc_auc"] - b.metrics["test"]["roc_auc"]) for a, b in pairs)
            thr = max(abs(a.threshold - b.threshold) for a, b in pairs)
            same = sum(a.best_epoch == b.best_epoch for a, b in pairs)
            print(
                f"{device:<6} {size:>5} {alone_rate:>21.2f} {many_s / size:>15.2f} {alone_rate / (many_s / size):>8.1f}x "
                f"{f1:>9.4f} {auc:>10.2e} {thr:>10.2e} {same:>10}/{size}"
            )


if __name__ == "__main__":
    main()
