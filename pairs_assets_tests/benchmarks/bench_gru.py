"""Benchmark: GRU training and inference time per pair at the default hyperparameters.

Run: ``.venv/bin/python pairs_assets_tests/benchmarks/bench_gru.py [--pairs KO-PEP,XOM-CVX] [--sessions 1300]``

Real data: the embedded S&P 500 closes, the last ``--sessions`` sessions up to 2022-12-28; spread =
log(y) - b·log(x) - a by OLS over the window; GARCH(1,1) (``arch``) on 100 × spread changes.
Prints a table (device, pair, sessions, sequences, epochs, train seconds, inference ms for the
latest sequence and for the whole test slice, test F1 / AUC, best baseline F1). CUDA rows when
a GPU is present. No assertions: timings are machine-dependent.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import torch
from arch import arch_model

from pairs_assets.quant.features import build_features, make_sequences, reversion_labels, trim_warmup
from pairs_assets.quant.gru import GRUConfig, fit_pair_model, predict_proba
from pairs_assets.settings import EMBEDDED_BARS_FILE


def pair_inputs(y: str, x: str, sessions: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", y, x])
    logs = np.log(closes.dropna().iloc[-sessions:])
    slope, intercept = np.polyfit(logs[x].to_numpy(), logs[y].to_numpy(), 1)
    spread = (logs[y] - slope * logs[x] - intercept).rename("spread")
    changes = 100.0 * spread.diff().dropna()
    fit = arch_model(changes, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")
    return spread, fit.conditional_volatility.reindex(spread.index), fit.std_resid.reindex(spread.index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="KO-PEP,XOM-CVX")
    parser.add_argument("--sessions", type=int, default=1300)
    parser.add_argument("--repeats", type=int, default=50, help="inference repetitions (median)")
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    header = (
        f"{'device':<6} {'pair':<10} {'sessions':>8} {'seqs':>5} {'epochs':>6} {'train_s':>8} "
        f"{'infer1_ms':>9} {'inferT_ms':>9} {'test_f1':>7} {'test_auc':>8} {'best_base_f1':>12}"
    )
    print(
        f"torch {torch.__version__}; training uses GRUConfig.cpu_threads={GRUConfig().cpu_threads} "
        f"thread(s), inference {torch.get_num_threads()}; defaults {GRUConfig()}"
    )
    print(header)
    print("-" * len(header))
    for device in devices:
        # untimed warm-up: first-call costs (kernel selection, CUDA context) are not per pair
        spread, sigma, resid = pair_inputs(*args.pairs.split(",")[0].split("-"), args.sessions)
        fit_pair_model(spread, sigma, resid, 2.0, GRUConfig(device=device, max_epochs=1), pair_id="warm-up")
        first = args.pairs.split(",")[0]
        # the last row trains all 50 epochs (no early stopping): the worst case per pair
        runs = [(pair, GRUConfig(device=device)) for pair in args.pairs.split(",")]
        runs.append((first + "*", GRUConfig(device=device, patience=GRUConfig().max_epochs)))
        for pair, config in runs:
            y, x = pair.rstrip("*").split("-")
            spread, sigma, resid = pair_inputs(y, x, args.sessions)
            started = time.perf_counter()
            result = fit_pair_model(spread, sigma, resid, entry_z=2.0, config=config, pair_id=pair.rstrip("*"))
            train_s = time.perf_counter() - started

            features = trim_warmup(build_features(spread, sigma, resid))
            X, _, _ = make_sequences(features, reversion_labels(spread), config.seq_len)
            model = result.model.to(device)
            latest = X[-1:]
            test = X[-result.split["n_test"] :]
            timings = {}
            for name, batch in (("one", latest), ("test", test)):
                predict_proba(model, batch)  # warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                samples = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    predict_proba(model, batch)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    samples.append((time.perf_counter() - t0) * 1000)
                timings[name] = statistics.median(samples)
            best_base = max(m["f1"] for m in result.baseline_metrics.values())
            print(
                f"{device:<6} {pair:<10} {len(spread):>8} {result.n_sequences:>5} {len(result.history):>6} "
                f"{train_s:>8.2f} {timings['one']:>9.2f} {timings['test']:>9.2f} "
                f"{result.metrics['test']['f1']:>7.3f} {result.metrics['test']['roc_auc']:>8.3f} {best_base:>12.3f}"
            )
            result.model.to("cpu")
    print("* the same pair trained for all max_epochs (patience = max_epochs): the worst case")


if __name__ == "__main__":
    main()
