"""Queueing margin of a prefill pool: how many instances keep the mean TTFT, queue wait included,
under the limit.

Prompts reach the pool as a Poisson stream of ``rate`` per second (many users in a closed loop,
each sending a prompt every TTFT + osl / tokens-per-s-user seconds, superpose to a near-Poisson
stream when users far outnumber instances) and each instance prefills one prompt at a time for a
fixed ``service_s``: an M/D/c queue. Its mean wait has no closed form; the Allen-Cunneen
approximation (A. O. Allen, "Probability, Statistics, and Queueing Theory", 2nd ed., 1990,
section 6.4) scales the M/M/c wait by the mean squared coefficient of variation of the
inter-arrival and service times, (1 + 0) / 2 here:

    W_q(M/D/c) ~= 1/2 x C(c, a) x service_s / (c - a),    a = rate x service_s,

with C(c, a) Erlang's C formula (the M/M/c probability of waiting), computed through the
Erlang-B recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)), C = B / (1 - (a/c)(1 - B)).
It is exact as c -> 1 for M/D/1 (Pollaczek-Khinchine) and within a few percent at the
utilisations a pool runs at. Little's law alone (c = ceil(a)) lets the queue grow without bound
as the utilisation approaches 1.
"""

from __future__ import annotations

import numpy as np

#: squared coefficients of variation: Poisson arrivals (1), deterministic prefill time (0)
ARRIVAL_SCV, SERVICE_SCV = 1.0, 0.0


def erlang_c(c, a) -> np.ndarray:
    """Probability that an arrival waits in an M/M/c queue with offered load ``a`` (< c)."""
    c = np.asarray(c, np.int64)
    a = np.asarray(a, float)
    b = np.ones(np.broadcast(c, a).shape)
    for k in range(1, int(np.max(c)) + 1):
        step = a * b / (k + a * b)
        b = np.where(k <= c, step, b)
    rho = a / np.maximum(c, 1)
    return np.where(rho < 1.0, b / (1.0 - rho * (1.0 - b)), 1.0)


def mdc_mean_wait_s(c, rate, service_s, service_scv=SERVICE_SCV) -> np.ndarray:
    """Mean queue wait of an M/D/c pool (Allen-Cunneen, module docstring); infinite at a >= c.
    ``service_scv``: the service times' squared coefficient of variation (0: one prompt length;
    a length mix has a spread of prefill times)."""
    c = np.asarray(c, float)
    a = np.asarray(rate, float) * np.asarray(service_s, float)
    wait = (ARRIVAL_SCV + np.asarray(service_scv, float)) / 2.0 * erlang_c(c.astype(np.int64), a) * np.asarray(service_s, float) \
        / np.maximum(c - a, 1e-300)
    return np.where(c > a, wait, np.inf)


def instances_for_wait(rate, service_s, max_wait_s, headroom: int = 4096, service_scv=SERVICE_SCV) -> np.ndarray:
    """Smallest pool (instances) whose mean M/D/c wait is at most ``max_wait_s``, per configuration;
    -1 where even ceil(a) + ``headroom`` instances do not get there (no slack under the limit).

    Vectorised over configurations; the loop runs over pool sizes (the Erlang-B recursion)."""
    rate, service_s, max_wait_s, scv = np.broadcast_arrays(np.asarray(rate, float), np.asarray(service_s, float),
                                                           np.asarray(max_wait_s, float), np.asarray(service_scv, float))
    a = rate * service_s
    out = np.full(a.shape, -1, np.int64)
    b = np.ones(a.shape)
    top = int(np.ceil(np.max(a, initial=0.0))) + headroom
    for c in range(1, top + 1):
        b = a * b / (c + a * b)
        rho = a / c
        wait = np.where(rho < 1.0, (ARRIVAL_SCV + scv) / 2.0 * b / (1.0 - rho * (1.0 - b)) * service_s
                        / np.maximum(c - a, 1e-300), np.inf)
        hit = (out < 0) & (wait <= max_wait_s)
        out[hit] = c
        if (out >= 0).all():
            break
    return out
