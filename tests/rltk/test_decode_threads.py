"""Decoding on several threads of one process (rltk.policy.parallel): the same completions as one thread, in evals
and in GRPO rollouts; each thread with its own intra-op threads; errors and modes carried to the caller."""

import threading

import pytest
import torch

import rltk.policy.memory as memory
from evals.generation import GenerationSettings, GenerationStats, generate
from rltk.core.errors import UserError
from rltk.policy.base import LoraSettings
from rltk.policy.parallel import decode_threads, run_threads
from rltk.policy.tiny import tiny_policy
from rltk.rollouts.worker import PromptRequest, RolloutWorker, SamplingConfig

PROMPTS = ["<|im_start|>user\nhi<|im_end|>\n", "<|im_start|>user\nwhat is 2 + 2?<|im_end|>\n",
           "<|im_start|>user\nname three colours<|im_end|>\n", "<|im_start|>user\n7 x 6 =<|im_end|>\n",
           "<|im_start|>user\nsay nothing at all, please<|im_end|>\n"]


def test_run_threads_returns_in_job_order_with_one_intra_op_thread_each_and_leaves_the_caller_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def job(k: int):
            def run():
                seen.append((threading.get_ident(), torch.get_num_threads(), torch.is_inference_mode_enabled()))
                return k * k
            return run

        with torch.inference_mode():
            assert run_threads([job(k) for k in range(7)], 2) == [k * k for k in range(7)]
        assert {n for _, n, _ in seen} == {1} and all(inf for *_, inf in seen)  # the caller's mode is carried over
        assert threading.get_ident() not in {t for t, _, _ in seen} and len({t for t, _, _ in seen}) <= 2
        assert torch.get_num_threads() == 2
        assert run_threads([job(3)], 2) == [9] and seen[-1][0] == threading.get_ident()  # one job: the caller runs it
    finally:
        torch.set_num_threads(before)


def test_run_threads_raises_the_first_error_and_starts_no_new_job():
    started = []

    def job(k: int):
        def run():
            started.append(k)
            if k == 1:
                raise ValueError("job 1 failed")
            return k
        return run

    with pytest.raises(ValueError, match="job 1 failed"):
        run_threads([job(k) for k in range(40)], 2)
    assert len(started) < 40


def test_decode_threads_auto_is_at_most_two_on_a_cpu_and_one_on_a_gpu():
    assert decode_threads(torch.device("cpu"), 3) == 3
    assert 1 <= decode_threads(torch.device("cpu")) <= 2
    assert decode_threads(torch.device("cuda")) == 1
    with pytest.raises(UserError, match="decode threads"):
        GenerationSettings(threads=-1)
    with pytest.raises(ValueError, match="threads"):
        SamplingConfig(threads=-1)


@pytest.mark.parametrize("samples,temperature", [(1, 0.0), (3, 1.0)])
def test_eval_generation_on_two_threads_gives_the_completions_of_one(samples, temperature):
    pol = tiny_policy()
    out, stats = {}, {}
    for threads in (1, 2):
        stats[threads] = GenerationStats()
        settings = GenerationSettings(max_new_tokens=6, n_samples=samples, temperature=temperature, batch_size=4 * samples,
                                      threads=threads)
        out[threads] = generate(pol, PROMPTS, settings, stats=stats[threads])
    assert [[c.text for c in o] for o in out[2]] == [[c.text for c in o] for o in out[1]]
    assert stats[2].tokens == stats[1].tokens and stats[2].sequences == stats[1].sequences == len(PROMPTS) * samples
    assert stats[2].prompt_tokens == stats[1].prompt_tokens


def test_rollouts_on_two_threads_give_the_groups_of_one():
    pol = tiny_policy(lora=LoraSettings(r=4))
    requests = [PromptRequest(i, {}, [{"role": "user", "content": p}]) for i, p in
                enumerate(["hi", "what is 2 + 2?", "name three colours", "7 x 6 =", "say nothing"])]
    groups = {}
    for threads in (1, 2):
        worker = RolloutWorker(None, SamplingConfig(group_size=3, max_new_tokens=6, threads=threads, batch_sequences=6),
                               policy=pol)
        groups[threads] = worker.generate(requests, seed=4)
    for a, b in zip(groups[1], groups[2]):
        assert a.index == b.index and a.completion_ids == b.completion_ids
        torch.testing.assert_close(torch.tensor(sum(a.logprobs, [])), torch.tensor(sum(b.logprobs, [])), rtol=0, atol=1e-6)
    assert len({tuple(c) for g in groups[1] for c in g.completion_ids}) > 1  # sampled, not one repeated answer


def test_the_decode_heap_threshold_goes_back_when_the_last_of_overlapping_decodes_ends(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(value)

        def malloc_trim(self, pad):
            calls.append("trim")

    monkeypatch.setattr(memory, "_glibc", lambda: FakeLibc())
    monkeypatch.setattr(memory, "_tuned", True)
    first, second = memory.decode_heap(), memory.decode_heap()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert calls == [memory.DECODE_MMAP_THRESHOLD]  # the other decode still runs
    second.__exit__(None, None, None)
    assert calls == [memory.DECODE_MMAP_THRESHOLD, memory.TRAIN_MMAP_THRESHOLD, "trim"]
