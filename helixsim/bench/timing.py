"""Median latency of one kernel call: CUDA events around CUDA-graph replays on a GPU,
``time.perf_counter`` on the CPU."""

from __future__ import annotations

import statistics
import time
from typing import Callable


class Timer:
    """Median latency (ms) of ``fn()`` over ``iters`` timed calls after ``warmup`` untimed ones."""

    def __init__(self, torch, device, warmup: int, iters: int, cuda_graphs: bool) -> None:
        self.torch, self.device = torch, device
        self.warmup, self.iters, self.cuda_graphs = warmup, iters, cuda_graphs
        self.graph_calls = 0
        self.eager_calls = 0
        self.graph_error: str | None = None

    @property
    def method(self) -> str:
        if self.device.type != "cuda":
            return "time.perf_counter per call"
        if self.graph_calls and self.eager_calls:
            return "CUDA events per call; CUDA graph replay where capture worked, else eager"
        return "CUDA events per call, CUDA graph replay" if self.graph_calls else "CUDA events per call, eager"

    def __call__(self, fn: Callable[[], object], graphs: bool = True) -> float:
        if self.device.type == "cuda":
            return self._cuda(fn, graphs and self.cuda_graphs)
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    def _cuda(self, fn, graphs: bool) -> float:
        torch = self.torch
        torch.cuda.synchronize()
        fn()        # lazy initialisation (cuBLAS handles, NCCL communicators) before any capture
        torch.cuda.synchronize()
        run, graph = fn, None
        if graphs:
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    fn()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    fn()
                run = graph.replay
            except Exception as err:  # capture is an optimisation: fall back to eager launches
                self.graph_error = self.graph_error or f"{err.__class__.__name__}: {str(err).splitlines()[0][:160]}"
                graph, run = None, fn
                torch.cuda.synchronize()
        self.graph_calls += graph is not None
        self.eager_calls += graph is None
        for _ in range(self.warmup):
            run()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(self.iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(self.iters)]
        for start, end in zip(starts, ends):
            start.record()
            run()
            end.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        del graph
        return float(statistics.median(times))
