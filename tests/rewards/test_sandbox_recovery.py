from __future__ import annotations

from rewards.sandbox import SandboxPool


def test_a_worker_killed_while_idle_is_replaced_and_the_item_still_runs():
    pool = SandboxPool(1)
    try:
        pool.warm()
        victim = pool._all[0]
        victim.proc.kill()
        victim.proc.wait(timeout=10)
        out = pool.run(("func", "operator:add"), [((2, 3), {})], timeout_s=30)
        assert out[0].ok and out[0].value == 5
        assert pool.replaced == 1
    finally:
        pool.close()
