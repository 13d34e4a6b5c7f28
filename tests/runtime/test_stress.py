"""Short CI versions of the long run and the concurrency stress (``stress_runs.py``).

The full versions (1,000,000 steps; 8 threads for a minute) are ``scripts/reliability.py
longrun`` and ``scripts/reliability.py stress``; the figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

from support.stress_runs import concurrency_stress, long_run

STEPS, WARMUP = 60_000, 20_000
THREADS, SECONDS = 8, 3.0


def test_long_run_memory_flat_outputs_exact_states_bounded():
    r = long_run(STEPS, warmup=WARMUP, chunk=5_000)
    assert r.steps == STEPS
    assert r.rss_growth <= 256 * 1024, f"resident memory grew by {r.rss_growth} bytes after warm-up"
    assert r.max_err <= 1e-5, f"max abs error vs the float64 reference: {r.max_err}"
    assert r.finite
    assert r.max_abs_h <= 1.0 and r.max_abs_c < 50, (r.max_abs_h, r.max_abs_c)


def test_threads_open_step_reset_close_without_cross_talk():
    r = concurrency_stress(THREADS, SECONDS)
    assert not r.failures, "\n".join(r.failures[:10])
    c = r.counts
    # every kind of operation really happened, from every angle
    for key in ("session_opens", "session_steps", "session_closes", "resets", "set_states", "slot_opens",
                "pool_steps", "slot_closes", "stale_refusals", "model_runs"):
        assert c[key] > 0, (key, dict(c))
    assert c["replays"] == c["session_opens"] + c["slot_opens"]
