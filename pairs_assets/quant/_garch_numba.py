"""Compiled kernels of :func:`pairs_assets.quant.garch.fit_garch_many` (numba, one series per call).

Private: the public API, its checks and its documentation live in :mod:`pairs_assets.quant.garch`.
Everything here reproduces arch 7/8's constant-mean GARCH(1,1) with normal errors step by step —
the backcast (EWMA-weighted first 75 squared residuals of the sample-mean residuals), the loose
variance bounds and their clipping (``bounds_check``), the likelihood, the one-step forecast
recursion of ``ARCHModelResult.forecast`` (backcast from the *fitted*-mean residuals of the
estimation sample, bounds from the full residuals) and arch's grid of starting values — so that
the only difference from arch is the optimiser: a projected Newton method on the exact Hessian
(analytic first and second derivatives of the variance recursion) instead of SLSQP on numerical
gradients. The tests compare every output with arch and statsmodels on real spreads.

Parameterisation used by the optimiser: x = (mu/sd, omega/target, p, a) with alpha = p·a,
beta = p·(1 − a), boxes omega/target ∈ [1e-8, 10] (arch's bounds on omega), p, a ∈ [0, 1]
(exactly arch's feasible set alpha, beta ≥ 0, alpha + beta ≤ 1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG_2PI = math.log(2.0 * math.pi)
_BACKCAST_TAU = 75
_EWMA = 0.94


@njit(cache=True)
def backcast_and_bounds(resids):
    """arch's ``backcast`` and ``variance_bounds`` (power 2) of one residual series."""
    n = resids.shape[0]
    tau = min(_BACKCAST_TAU, n)
    weight_sum = 0.0
    for i in range(tau):
        weight_sum += _EWMA**i
    backcast = 0.0
    for i in range(tau):
        backcast += resids[i] * resids[i] * (_EWMA**i / weight_sum)
    lower = np.empty(n)
    upper = np.empty(n)
    # ewma_recursion: sigma2_0 = backcast, sigma2_t = 0.06·e²_{t-1} + 0.94·sigma2_{t-1}
    ewma = 0.0 * backcast + (1.0 - _EWMA) * backcast + _EWMA * backcast
    mean = 0.0
    max_sq = 0.0
    for t in range(n):
        mean += resids[t]
        if resids[t] * resids[t] > max_sq:
            max_sq = resids[t] * resids[t]
    mean /= n
    var = 0.0
    for t in range(n):
        var += (resids[t] - mean) ** 2
    var /= n
    lower_bound = var / 1e8
    min_upper = 1.0 + max_sq
    upper_bound = 1e7 * (1.0 + max_sq)
    for t in range(n):
        if t > 0:
            ewma = 0.0 + (1.0 - _EWMA) * resids[t - 1] * resids[t - 1] + _EWMA * ewma
        lo = ewma / 1e6
        hi = ewma * 1e6
        if lo < lower_bound:
            lo = lower_bound
        if hi < min_upper:
            hi = min_upper
        if hi > upper_bound:
            hi = upper_bound
        lower[t] = lo
        upper[t] = hi
    return backcast, lower, upper


@njit(cache=True)
def _clip(h, lo, hi):
    # arch's bounds_check; returns (value, clipped)
    if h < lo:
        return lo, True
    if h > hi:
        if math.isinf(h):
            return hi + 1000.0, True
        return hi + math.log(h / hi), True
    return h, False


@njit(cache=True)
def negloglik(y, mu, omega, alpha, beta, backcast, lower, upper):
    """−log-likelihood of the sample (arch's normal likelihood, bounds clipping included)."""
    n = y.shape[0]
    total = 0.0
    h = 0.0
    e_prev = 0.0
    for t in range(n):
        if t == 0:
            h = omega + alpha * backcast + beta * backcast
        else:
            h = omega + alpha * e_prev * e_prev + beta * h
        h, _ = _clip(h, lower[t], upper[t])
        e = y[t] - mu
        total += 0.5 * (_LOG_2PI + math.log(h) + e * e / h)
        e_prev = e
    return total


@njit(cache=True)
def grid_negloglik(y, mu, omega, alpha, beta, backcast, lower, upper):
    """:func:`negloglik` at each (omega[k], alpha[k], beta[k]) in one pass over y.

    The recursions are independent, so running them side by side overlaps their latencies, and
    Σ ln h_t is taken as the log of products of 8 variances (bounded by arch's variance bounds, so
    no product over- or underflows): one logarithm per 8 observations instead of one each. The
    values agree with :func:`negloglik` to ~1e-12 (only the start is chosen with them).
    """
    m = omega.shape[0]
    h = np.empty(m)
    quadratic = np.zeros(m)
    log_sum = np.zeros(m)
    product = np.ones(m)
    e_prev = 0.0
    n = y.shape[0]
    for t in range(n):
        e = y[t] - mu
        for k in range(m):
            if t == 0:
                value = omega[k] + alpha[k] * backcast + beta[k] * backcast
            else:
                value = omega[k] + alpha[k] * e_prev * e_prev + beta[k] * h[k]
            value, _ = _clip(value, lower[t], upper[t])
            h[k] = value
            product[k] *= value
            quadratic[k] += e * e / value
        if t % 8 == 7 or t == n - 1:
            for k in range(m):
                log_sum[k] += math.log(product[k])
                product[k] = 1.0
        e_prev = e
    return 0.5 * (n * _LOG_2PI + log_sum + quadratic)


@njit(cache=True, fastmath=True)
def negloglik_derivatives(y, mu, omega, alpha, beta, backcast, lower, upper, grad, hess):
    """−log-likelihood with its exact gradient and Hessian in θ = (mu, omega, alpha, beta).

    Derivatives of h_t follow the recursion h_t = ω + α·e²_{t−1} + β·h_{t−1} (h_0 = ω + (α+β)·bc,
    bc fixed); of the second derivatives only μμ, μα, μβ, ωβ, αβ, ββ are not identically zero.
    A clipped h_t (variance bounds) is treated as locally constant. Returns (nll, clipped) where
    clipped counts observations at a bound.
    """
    n = y.shape[0]
    g_mu = g_om = g_al = g_be = 0.0
    h_mumu = h_muom = h_mual = h_mube = h_omom = h_omal = h_ombe = h_alal = h_albe = h_bebe = 0.0
    # ∂h/∂θ and the non-zero ∂²h/∂θ∂θ' of the current observation
    d_mu = 0.0
    d_om = 1.0
    d_al = backcast
    d_be = backcast
    dd_mumu = dd_mual = dd_mube = dd_ombe = dd_albe = dd_bebe = 0.0
    h = omega + (alpha + beta) * backcast
    total = 0.0
    clipped = 0
    e_prev = 0.0
    for t in range(n):
        if t > 0:
            h_prev = h
            h = omega + alpha * e_prev * e_prev + beta * h_prev
            dd_mumu = 2.0 * alpha + beta * dd_mumu
            dd_mual = -2.0 * e_prev + beta * dd_mual
            dd_mube = d_mu + beta * dd_mube
            dd_ombe = d_om + beta * dd_ombe
            dd_albe = d_al + beta * dd_albe
            dd_bebe = 2.0 * d_be + beta * dd_bebe
            d_mu = -2.0 * alpha * e_prev + beta * d_mu
            d_om = 1.0 + beta * d_om
            d_al = e_prev * e_prev + beta * d_al
            d_be = h_prev + beta * d_be
        h, was_clipped = _clip(h, lower[t], upper[t])
        if was_clipped:
            clipped += 1
            d_mu = d_om = d_al = d_be = 0.0
            dd_mumu = dd_mual = dd_mube = dd_ombe = dd_albe = dd_bebe = 0.0
        e = y[t] - mu
        inv_h = 1.0 / h
        e2h = e * e * inv_h
        total += 0.5 * (_LOG_2PI + math.log(h) + e2h)
        c1 = 0.5 * inv_h * (1.0 - e2h)  # ∂nll_t/∂h
        c2 = 0.5 * inv_h * inv_h * (2.0 * e2h - 1.0)  # ∂²nll_t/∂h²
        ceh = e * inv_h * inv_h  # cross term from ∂e/∂μ = −1
        g_mu += c1 * d_mu - e * inv_h
        g_om += c1 * d_om
        g_al += c1 * d_al
        g_be += c1 * d_be
        h_mumu += c1 * dd_mumu + c2 * d_mu * d_mu + inv_h + 2.0 * ceh * d_mu
        h_muom += c2 * d_mu * d_om + ceh * d_om
        h_mual += c1 * dd_mual + c2 * d_mu * d_al + ceh * d_al
        h_mube += c1 * dd_mube + c2 * d_mu * d_be + ceh * d_be
        h_omom += c2 * d_om * d_om
        h_omal += c2 * d_om * d_al
        h_ombe += c1 * dd_ombe + c2 * d_om * d_be
        h_alal += c2 * d_al * d_al
        h_albe += c1 * dd_albe + c2 * d_al * d_be
        h_bebe += c1 * dd_bebe + c2 * d_be * d_be
        e_prev = e
    grad[0] = g_mu
    grad[1] = g_om
    grad[2] = g_al
    grad[3] = g_be
    hess[0, 0] = h_mumu
    hess[0, 1] = hess[1, 0] = h_muom
    hess[0, 2] = hess[2, 0] = h_mual
    hess[0, 3] = hess[3, 0] = h_mube
    hess[1, 1] = h_omom
    hess[1, 2] = hess[2, 1] = h_omal
    hess[1, 3] = hess[3, 1] = h_ombe
    hess[2, 2] = h_alal
    hess[2, 3] = hess[3, 2] = h_albe
    hess[3, 3] = h_bebe
    return total, clipped


@njit(cache=True)
def _theta(x, sd, target):
    mu = x[0] * sd
    omega = x[1] * target
    alpha = x[2] * x[3]
    beta = x[2] * (1.0 - x[3])
    return mu, omega, alpha, beta


@njit(cache=True)
def newton(y, x0, sd, target, backcast, lower, upper, max_iter, tol, decrement_tol):
    """Projected Newton from x0 (optimiser coordinates). Returns (x, nll, iterations, converged, clipped)."""
    x = x0.copy()
    lo_x = np.array([-np.inf, 1e-8, 0.0, 0.0])
    hi_x = np.array([np.inf, 10.0, 1.0, 1.0])
    grad_t = np.zeros(4)
    hess_t = np.zeros((4, 4))
    grad = np.zeros(4)
    hess = np.zeros((4, 4))
    jac = np.zeros((4, 4))
    converged = False
    iterations = 0
    clipped = 0
    mu, omega, alpha, beta = _theta(x, sd, target)
    f = negloglik(y, mu, omega, alpha, beta, backcast, lower, upper)
    have_derivatives = False  # grad_t/hess_t already hold the derivatives at x (accepted full step)
    grad_new = np.zeros(4)
    hess_new = np.zeros((4, 4))
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is returned after the loop
        if not have_derivatives:
            mu, omega, alpha, beta = _theta(x, sd, target)
            f, clipped = negloglik_derivatives(y, mu, omega, alpha, beta, backcast, lower, upper, grad_t, hess_t)
        # chain rule to x: θ = (sd·x0, target·x1, x2·x3, x2·(1 − x3))
        for i in range(4):
            for j in range(4):
                jac[i, j] = 0.0
        jac[0, 0] = sd
        jac[1, 1] = target
        jac[2, 2] = x[3]
        jac[2, 3] = x[2]
        jac[3, 2] = 1.0 - x[3]
        jac[3, 3] = -x[2]
        for i in range(4):
            acc = 0.0
            for k in range(4):
                acc += jac[k, i] * grad_t[k]
            grad[i] = acc
        for i in range(4):
            for j in range(4):
                acc = 0.0
                for k in range(4):
                    for m in range(4):
                        acc += jac[k, i] * hess_t[k, m] * jac[m, j]
                hess[i, j] = acc
        hess[2, 3] += grad_t[2] - grad_t[3]
        hess[3, 2] += grad_t[2] - grad_t[3]

        # active set: at a bound with the gradient pushing outwards
        free = np.ones(4, dtype=np.bool_)
        projected = 0.0
        for i in range(4):
            at_lo = x[i] <= lo_x[i] and grad[i] > 0.0
            at_hi = x[i] >= hi_x[i] and grad[i] < 0.0
            if at_lo or at_hi:
                free[i] = False
            else:
                projected = max(projected, abs(grad[i]))
        if projected < tol:
            converged = True
            break

        # Newton step on the free variables; Levenberg damping while the Hessian is not PD
        idx = np.empty(4, dtype=np.int64)
        k = 0
        for i in range(4):
            if free[i]:
                idx[k] = i
                k += 1
        sub = np.empty((k, k))
        rhs = np.empty(k)
        for a_i in range(k):
            rhs[a_i] = -grad[idx[a_i]]
            for b_i in range(k):
                sub[a_i, b_i] = hess[idx[a_i], idx[b_i]]
        scale_diag = 0.0
        for a_i in range(k):
            scale_diag = max(scale_diag, abs(sub[a_i, a_i]))
        damping = 0.0
        step_free = np.zeros(k)
        for _ in range(60):
            trial = sub.copy()
            for a_i in range(k):
                trial[a_i, a_i] += damping
            ok = True
            # Cholesky by hand (numba's cholesky raises on failure)
            chol = np.zeros((k, k))
            for a_i in range(k):
                for b_i in range(a_i + 1):
                    s = trial[a_i, b_i]
                    for c_i in range(b_i):
                        s -= chol[a_i, c_i] * chol[b_i, c_i]
                    if a_i == b_i:
                        if s <= 1e-14 * max(scale_diag, 1e-300):
                            ok = False
                            break
                        chol[a_i, a_i] = math.sqrt(s)
                    else:
                        chol[a_i, b_i] = s / chol[b_i, b_i]
                if not ok:
                    break
            if ok:
                z = np.zeros(k)
                for a_i in range(k):
                    s = rhs[a_i]
                    for c_i in range(a_i):
                        s -= chol[a_i, c_i] * z[c_i]
                    z[a_i] = s / chol[a_i, a_i]
                for a_i in range(k - 1, -1, -1):
                    s = z[a_i]
                    for c_i in range(a_i + 1, k):
                        s -= chol[c_i, a_i] * step_free[c_i]
                    step_free[a_i] = s / chol[a_i, a_i]
                break
            damping = max(2.0 * damping, 1e-8 * max(scale_diag, 1.0))
        step = np.zeros(4)
        for a_i in range(k):
            step[idx[a_i]] = step_free[a_i]
        # Newton decrement: the predicted gain of a full step is below what the data can resolve
        predicted = 0.0
        for i in range(4):
            predicted -= grad[i] * step[i]
        if predicted < decrement_tol:
            converged = True
            break

        # projected backtracking line search (Armijo on the projected step)
        t_step = 1.0
        improved = False
        x_new = np.empty(4)
        have_derivatives = False
        clipped_new = 0
        for trial in range(50):
            for i in range(4):
                x_new[i] = min(max(x[i] + t_step * step[i], lo_x[i]), hi_x[i])
            mu, omega, alpha, beta = _theta(x_new, sd, target)
            if trial == 0:
                # the full Newton step is usually accepted: evaluate its derivatives in the same
                # pass so the next iteration need not (saves one pass over the data per iteration)
                f_new, clipped_new = negloglik_derivatives(
                    y, mu, omega, alpha, beta, backcast, lower, upper, grad_new, hess_new
                )
            else:
                f_new = negloglik(y, mu, omega, alpha, beta, backcast, lower, upper)
            decrease = 0.0
            for i in range(4):
                decrease += grad[i] * (x_new[i] - x[i])
            if math.isfinite(f_new) and f_new <= f + 1e-4 * decrease:
                improved = True
                if trial == 0:
                    have_derivatives = True
                    f = f_new
                    clipped = clipped_new
                    for i in range(4):
                        grad_t[i] = grad_new[i]
                        for j in range(4):
                            hess_t[i, j] = hess_new[i, j]
                break
            t_step *= 0.5
        if not improved:
            break
        moved = 0.0
        for i in range(4):
            moved = max(moved, abs(x_new[i] - x[i]))
            x[i] = x_new[i]
        if moved < 1e-14:
            break

    mu, omega, alpha, beta = _theta(x, sd, target)
    f = negloglik(y, mu, omega, alpha, beta, backcast, lower, upper)
    return x, f, iterations, converged, clipped


@njit(cache=True)
def fit_one(y, max_iter, tol, decrement_tol, n_starts):
    """Maximise the GARCH(1,1) likelihood of one (scaled) sample.

    Newton runs from the ``n_starts`` best points of arch's starting-value grid (the first is
    arch's own starting value); the best converged optimum is kept. Returns (params[4] = mu,
    omega, alpha, beta; nll; iterations (all starts); converged; clipped at the optimum; spread —
    the largest gap between the best optimum and another start's converged optimum (> 0: the
    likelihood has several local maxima); backcast; lower; upper).
    """
    n = y.shape[0]
    mean = 0.0
    for t in range(n):
        mean += y[t]
    mean /= n
    resids0 = y - mean
    backcast, lower, upper = backcast_and_bounds(resids0)
    target = 0.0
    for t in range(n):
        target += resids0[t] * resids0[t]
    target /= n
    sd = math.sqrt(target)

    # arch's starting-value grid (alpha x alpha + beta), mean at the sample mean
    alphas = (0.01, 0.05, 0.1, 0.2)
    persistences = (0.5, 0.7, 0.9, 0.98)
    grid = np.empty((16, 4))
    grid_omega = np.empty(16)
    grid_alpha = np.empty(16)
    grid_beta = np.empty(16)
    k = 0
    for a_start in alphas:
        for p_start in persistences:
            grid[k, 0] = mean / sd
            grid[k, 1] = 1.0 - p_start
            grid[k, 2] = p_start
            grid[k, 3] = a_start / p_start
            grid_omega[k] = (1.0 - p_start) * target
            grid_alpha[k] = a_start
            grid_beta[k] = p_start - a_start
            k += 1
    grid_nll = grid_negloglik(y, mean, grid_omega, grid_alpha, grid_beta, backcast, lower, upper)
    # indices by increasing value, ties in grid order (arch takes the first maximum)
    order = np.arange(16)
    for i in range(1, 16):
        j = i
        while j > 0 and grid_nll[order[j - 1]] > grid_nll[order[j]]:
            order[j - 1], order[j] = order[j], order[j - 1]
            j -= 1

    best_x = grid[order[0]].copy()
    best_f = np.inf
    best_clipped = 0
    any_converged = False
    total_iterations = 0
    converged_f = np.full(n_starts, np.nan)
    for s in range(min(n_starts, 16)):
        x, f, iterations, converged, clipped = newton(
            y, grid[order[s]], sd, target, backcast, lower, upper, max_iter, tol, decrement_tol
        )
        total_iterations += iterations
        if converged:
            converged_f[s] = f
            if not any_converged or f < best_f:
                best_x, best_f, best_clipped = x, f, clipped
            any_converged = True
        elif not any_converged and f < best_f:
            best_x, best_f, best_clipped = x, f, clipped
    spread = 0.0
    for s in range(min(n_starts, 16)):
        if math.isfinite(converged_f[s]):
            spread = max(spread, converged_f[s] - best_f)
    mu, omega, alpha, beta = _theta(best_x, sd, target)
    params = np.array([mu, omega, alpha, beta])
    return params, best_f, total_iterations, any_converged, best_clipped, spread, backcast, lower, upper


@njit(cache=True)
def conditional_variance(resids, omega, alpha, beta, backcast, lower, upper):
    """h_1..h_n of the fitted model (arch's ``conditional_volatility``²)."""
    n = resids.shape[0]
    out = np.empty(n)
    h = 0.0
    for t in range(n):
        if t == 0:
            h = omega + (alpha + beta) * backcast
        else:
            h = omega + alpha * resids[t - 1] * resids[t - 1] + beta * h
        h, _ = _clip(h, lower[t], upper[t])
        out[t] = h
    return out


@njit(cache=True)
def one_step_forecasts(full_resids, n_fit, omega, alpha, beta):
    """arch's ``forecast(horizon=1)`` recursion: h_1..h_{n+1} over the full residuals.

    The backcast comes from the first ``n_fit`` residuals (the estimation sample, fitted mean), the
    bounds from all residuals; the last value (beyond the data) is unbounded above.
    """
    backcast, _, _ = backcast_and_bounds(full_resids[:n_fit])
    _, lower, upper = backcast_and_bounds(full_resids)
    n = full_resids.shape[0]
    out = np.empty(n + 1)
    h = 0.0
    for t in range(n + 1):
        if t == 0:
            h = omega + (alpha + beta) * backcast
        else:
            h = omega + alpha * full_resids[t - 1] * full_resids[t - 1] + beta * h
        if t < n:
            h, _ = _clip(h, lower[t], upper[t])
        elif h < 0.0:
            h = 0.0
        out[t] = h
    return out


@njit(cache=True)
def ljung_box_stat(x, lags):
    """Ljung-Box Q at ``lags`` of x (demeaned, autocovariances over n as statsmodels ``acf``)."""
    n = x.shape[0]
    mean = 0.0
    for t in range(n):
        mean += x[t]
    mean /= n
    c0 = 0.0
    for t in range(n):
        c0 += (x[t] - mean) ** 2
    q = 0.0
    for k in range(1, lags + 1):
        ck = 0.0
        for t in range(k, n):
            ck += (x[t] - mean) * (x[t - k] - mean)
        r = ck / c0
        q += r * r / (n - k)
    return n * (n + 2.0) * q


@njit(cache=True)
def _solve_spd(matrix, rhs):
    """Solve a small symmetric positive definite system by Cholesky (no LAPACK: compiles fast)."""
    k = rhs.shape[0]
    chol = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            total = matrix[i, j]
            for m in range(j):
                total -= chol[i, m] * chol[j, m]
            chol[i, j] = math.sqrt(total) if i == j else total / chol[j, j]
    z = np.empty(k)
    for i in range(k):
        total = rhs[i]
        for m in range(i):
            total -= chol[i, m] * z[m]
        z[i] = total / chol[i, i]
    out = np.empty(k)
    for i in range(k - 1, -1, -1):
        total = z[i]
        for m in range(i + 1, k):
            total -= chol[m, i] * out[m]
        out[i] = total / chol[i, i]
    return out


@njit(cache=True)
def arch_lm_stat(x, lags):
    """Engle's ARCH-LM statistic nobs·R² of x² on a constant and ``lags`` of its lags.

    The OLS is solved through the centred normal equations (a lags × lags Cholesky), which for
    this small, well-conditioned design agrees with statsmodels' pinv-based OLS to ~1e-12.
    """
    sq = x * x
    n = sq.shape[0]
    rows = n - lags
    means = np.zeros(lags + 1)  # target first, then lags 1..lags
    for r in range(rows):
        t = r + lags
        for j in range(lags + 1):
            means[j] += sq[t - j]
    means /= rows
    cross = np.zeros((lags + 1, lags + 1))
    for r in range(rows):
        t = r + lags
        for i in range(lags + 1):
            di = sq[t - i] - means[i]
            for j in range(i, lags + 1):
                cross[i, j] += di * (sq[t - j] - means[j])
    gram = np.empty((lags, lags))
    rhs = np.empty(lags)
    for i in range(lags):
        rhs[i] = cross[0, i + 1]
        for j in range(lags):
            a, b = min(i, j) + 1, max(i, j) + 1
            gram[i, j] = cross[a, b]
    coef = _solve_spd(gram, rhs)
    explained = 0.0
    for i in range(lags):
        explained += coef[i] * rhs[i]
    return rows * explained / cross[0, 0]


# Layout of the vector returned by fit_series / summarise (indices into it).
MU, OMEGA, ALPHA, BETA, NLL, ITERATIONS, CONVERGED, CLIPPED, SPREAD = range(9)
FIT_SIZE = 9
TRAIN_OFFSET = FIT_SIZE  # the same values of the training fit follow those of the full-sample fit
SIGMA2_NEXT = 2 * FIT_SIZE
QLIKE_GARCH = SIGMA2_NEXT + 1
QLIKE_NAIVE = SIGMA2_NEXT + 2
LJUNG_BOX_Q = SIGMA2_NEXT + 3
ARCH_LM = SIGMA2_NEXT + 4
BAD_FORECAST = SIGMA2_NEXT + 5  # 1.0 when a forecast variance was not positive and finite
RESULT_SIZE = SIGMA2_NEXT + 6


@njit(cache=True)
def _store_fit(out, offset, params, nll, iterations, converged, clipped, spread):
    for i in range(4):
        out[offset + i] = params[i]
    out[offset + NLL] = nll
    out[offset + ITERATIONS] = iterations
    out[offset + CONVERGED] = 1.0 if converged else 0.0
    out[offset + CLIPPED] = clipped
    out[offset + SPREAD] = spread


@njit(cache=True)
def summarise(scaled, holdout, out, ljung_box_lags, arch_lm_lags, qlike_floor):
    """Fill the forecast and diagnostic entries of ``out`` from the parameters already in it.

    Training parameters → one-step forecasts of the holdout and QLIKE against the training
    variance; full-sample parameters → next-session variance, standardized residuals (the fit's
    backcast and bounds, from the sample-mean residuals), Ljung-Box Q and ARCH-LM statistics.
    """
    n = scaled.shape[0]
    n_train = n - holdout
    mu_tr = out[TRAIN_OFFSET + MU]
    forecasts = one_step_forecasts(
        scaled - mu_tr, n_train, out[TRAIN_OFFSET + OMEGA], out[TRAIN_OFFSET + ALPHA], out[TRAIN_OFFSET + BETA]
    )
    train_mean = 0.0
    for t in range(n_train):
        train_mean += scaled[t]
    train_mean /= n_train
    naive = 0.0
    for t in range(n_train):
        naive += (scaled[t] - train_mean) ** 2
    naive /= n_train
    floor = qlike_floor * naive
    loss_garch = 0.0
    loss_naive = 0.0
    bad = 0.0
    for t in range(n_train, n):
        proxy = max((scaled[t] - mu_tr) ** 2, floor)
        h = forecasts[t]
        if not (h > 0.0 and math.isfinite(h)):
            bad = 1.0
            continue
        ratio = proxy / h
        loss_garch += ratio - math.log(ratio) - 1.0
        ratio = proxy / naive
        loss_naive += ratio - math.log(ratio) - 1.0
    out[QLIKE_GARCH] = loss_garch / holdout
    out[QLIKE_NAIVE] = loss_naive / holdout

    mu, omega, alpha, beta = out[MU], out[OMEGA], out[ALPHA], out[BETA]
    resids = scaled - mu
    sigma2_next = one_step_forecasts(resids, n, omega, alpha, beta)[n]
    if not (sigma2_next > 0.0 and math.isfinite(sigma2_next)):
        bad = 1.0
    out[SIGMA2_NEXT] = sigma2_next
    out[BAD_FORECAST] = bad
    mean = 0.0
    for t in range(n):
        mean += scaled[t]
    mean /= n
    backcast, lower, upper = backcast_and_bounds(scaled - mean)
    variance = conditional_variance(resids, omega, alpha, beta, backcast, lower, upper)
    std_resid = resids / np.sqrt(variance)
    out[LJUNG_BOX_Q] = ljung_box_stat(std_resid, ljung_box_lags)
    out[ARCH_LM] = arch_lm_stat(std_resid, arch_lm_lags)


@njit(cache=True)
def fit_series(scaled, holdout, ljung_box_lags, arch_lm_lags, qlike_floor, max_iter, tol, decrement_tol, n_starts):
    """Both fits of one scaled series and everything :class:`GarchFit` needs (layout above)."""
    out = np.full(RESULT_SIZE, np.nan)
    n_train = scaled.shape[0] - holdout
    params, nll, iterations, converged, clipped, spread, _, _, _ = fit_one(
        scaled[:n_train].copy(), max_iter, tol, decrement_tol, n_starts
    )
    _store_fit(out, TRAIN_OFFSET, params, nll, iterations, converged, clipped, spread)
    params, nll, iterations, converged, clipped, spread, _, _, _ = fit_one(
        scaled, max_iter, tol, decrement_tol, n_starts
    )
    _store_fit(out, 0, params, nll, iterations, converged, clipped, spread)
    summarise(scaled, holdout, out, ljung_box_lags, arch_lm_lags, qlike_floor)
    return out
