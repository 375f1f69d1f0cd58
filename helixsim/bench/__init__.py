"""Kernel microbenchmarks that write calibration tables (``helixsim bench``).

Measures the kernels of a decode step with PyTorch on the local device and
writes one table per run with exactly the columns of the shipped
calibration data (``<family>.csv.gz``, see ``docs/calibration.md``), so that
``helixsim calibrate --data DIR --hardware H`` fits a user's own GPU:

=================  =========================  ==========================================================
bench              table written              kernel measured
=================  =========================  ==========================================================
``gemm``           ``gemm``                   ``[m,k] x [k,n]``: ``F.linear`` (bf16), ``torch._scaled_mm`` (fp8)
``attention``      ``gqa_decode_attention``   one decode token per request, ``scaled_dot_product_attention``
``mla_attention``  ``mla_decode_attention``   absorbed MLA (latent 512 + rope 64 scores, 512-wide values), matmuls
``moe``            ``moe``                    routed experts of one GPU: permute, grouped GEMMs, SwiGLU, combine
``allreduce``      ``nccl`` (``all_reduce``)  ``torch.distributed.all_reduce`` (under torchrun, >= 2 ranks)
``alltoall``       ``nccl`` (``alltoall``)    ``torch.distributed.all_to_all_single`` (under torchrun, >= 2 ranks)
=================  =========================  ==========================================================

Timing: ``warmup`` untimed calls, then ``iters`` timed calls, one at a time;
the median is recorded (milliseconds per call). On CUDA each call is timed
with CUDA events, replaying a CUDA graph of the kernel(s) where capture
works (no CPU launch gaps); on the CPU with ``time.perf_counter``. Collective
latencies are the largest median over the ranks. The run's conditions
(device, versions, clocks, protocol, skipped parts) go to a sidecar
``<stem>.conditions.json`` beside the table.

PyTorch is an optional dependency (``pip install 'helixsim[bench]'``); it is
imported only when a benchmark runs.
"""

from .run import run_bench
from .spec import BENCHES, TABLES, BenchResult, output_paths, parse_dtypes

__all__ = ["BENCHES", "TABLES", "BenchResult", "output_paths", "parse_dtypes", "run_bench"]
