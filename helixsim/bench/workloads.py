"""The kernels ``helixsim bench`` times, built with PyTorch: GEMM, GQA and MLA decode attention,
the routed experts of one GPU, and the collectives."""

from __future__ import annotations

import math
from typing import Callable, Iterator

from .spec import COLLECTIVES, LABELS, MLA_LORA, MLA_REFERENCE_HEADS, MLA_ROPE, gemm_grid, gqa_grid, mla_grid, moe_grid
from .timing import Timer

#
# Each ``_<bench>`` generator yields (row, bytes, setup): the table row without its latency, an estimate of the
# device memory the configuration needs, and a function building the tensors and returning the callable to time.


def _uniform(torch, shape, device, dtype, scale: float = 1.0):
    return (torch.rand(shape, device=device, dtype=torch.float32) * 2.0 - 1.0).mul_(scale).to(dtype)


def _gemm(torch, device, dtype: str, shapes: str, F) -> Iterator[tuple[dict, float, Callable]]:
    label = LABELS[dtype]
    for c in gemm_grid(shapes):
        m, n, k = c["m"], c["n"], c["k"]
        eb = 1 if dtype == "fp8" else 2
        row = {"op_name": "gemm", "kernel_source": "torch_scaled_mm" if dtype == "fp8" else "torch_linear",
               "gemm_dtype": label, "m": m, "n": n, "k": k}

        def setup(m=m, n=n, k=k):
            a = _uniform(torch, (m, k), device, torch.bfloat16)
            w = _uniform(torch, (n, k), device, torch.bfloat16, 1.0 / math.sqrt(k))
            if dtype == "bf16":
                return lambda: F.linear(a, w)
            a8, w8 = a.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
            one = torch.ones((), device=device, dtype=torch.float32)
            wt = w8.t()   # column-major [k, n], as cuBLASLt FP8 wants it
            return lambda: torch._scaled_mm(a8, wt, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

        yield row, (m * k + n * k) * eb + m * n * 2 + (m * k + n * k) * 2, setup


def _kv_dtype(torch, dtype: str):
    return torch.float8_e4m3fn if dtype == "fp8" else torch.bfloat16


def _gqa(torch, device, dtype: str, shapes: str, F) -> Iterator[tuple[dict, float, Callable]]:
    kvb = 1 if dtype == "fp8" else 2
    for c in gqa_grid(shapes):
        b, h, kv, d, step = c["batch_size"], c["num_heads"], c["num_key_value_heads"], c["head_dim"], c["step"]
        s = step + 1
        row = {"op_name": "generation_attention", "kernel_source": "torch_sdpa", "batch_size": b, "isl": 1,
               "num_heads": h, "num_key_value_heads": kv, "head_dim": d, "window_size": 0, "beam_width": 1,
               "attn_dtype": "bfloat16", "kv_cache_dtype": LABELS[dtype], "step": step}
        cache = 2 * b * kv * s * d
        if shapes == "full" and cache * kvb > 8 * 2 ** 30:     # the calibration data's largest KV cache
            continue

        def setup(b=b, h=h, kv=kv, d=d, s=s):
            # one query token per request: the h / kv query heads sharing a KV head attend as a block of
            # g = h / kv query rows of that head (non-causal: every cached token is visible)
            q = _uniform(torch, (b, kv, h // kv, d), device, torch.bfloat16)
            k = _uniform(torch, (b, kv, s, d), device, torch.bfloat16).to(_kv_dtype(torch, dtype))
            v = _uniform(torch, (b, kv, s, d), device, torch.bfloat16).to(_kv_dtype(torch, dtype))
            if dtype == "fp8":   # FP8 cache: dequantised to BF16 on the fly (a separate pass in eager PyTorch)
                return lambda: F.scaled_dot_product_attention(q, k.to(torch.bfloat16), v.to(torch.bfloat16))
            return lambda: F.scaled_dot_product_attention(q, k, v)

        extra = cache * 2 if dtype == "fp8" else 0
        yield row, cache * kvb + extra + 2 * b * h * d * 2, setup


def _mla(torch, device, dtype: str, shapes: str, F) -> Iterator[tuple[dict, float, Callable]]:
    kvb = 1 if dtype == "fp8" else 2
    width = MLA_LORA + MLA_ROPE
    for c in mla_grid(shapes):
        b, h, step = c["batch_size"], c["num_heads"], c["step"]
        s = step + 1
        row = {"op_name": "mla_generation", "kernel_source": "torch_matmul", "mla_dtype": "bfloat16",
               "kv_cache_dtype": LABELS[dtype], "num_heads": h, "batch_size": b, "isl": 1,
               "tp_size": max(1, MLA_REFERENCE_HEADS // h), "step": step}

        def setup(b=b, h=h, s=s):
            # absorbed MLA: the query is already projected into the latent space (q x W_UK), so scores are
            # [q_latent | q_rope] . [c_kv | k_rope] over 512 + 64 and the values are the 512-wide latent c_kv
            q = _uniform(torch, (b, h, width), device, torch.bfloat16)
            cache = _uniform(torch, (b, s, width), device, torch.bfloat16).to(_kv_dtype(torch, dtype))
            scale = 1.0 / math.sqrt(128 + MLA_ROPE)     # DeepSeek's qk_nope + qk_rope head dim

            def attend():
                kv = cache.to(torch.bfloat16) if dtype == "fp8" else cache
                scores = torch.matmul(q, kv.transpose(1, 2))                    # [b, h, s]
                p = torch.softmax(scores.float() * scale, dim=-1).to(torch.bfloat16)
                return torch.matmul(p, kv[:, :, :MLA_LORA])                     # [b, h, 512]

            return attend

        cache_elems = b * s * width
        yield row, cache_elems * (kvb + (2 if dtype == "fp8" else 0)) + b * h * s * (2 + 4 + 4 + 2), setup


def _moe(torch, device, dtype: str, shapes: str, F, grouped_mm: bool) -> Iterator[tuple[dict, float, Callable]]:
    for c in moe_grid(shapes):
        t, hid, inter, topk, e = c["num_tokens"], c["hidden_size"], c["inter_size"], c["topk"], c["num_experts"]
        tp, ep = c["moe_tp_size"], c["moe_ep_size"]
        local, f = max(1, e // ep), inter // tp
        row = {"op_name": "moe", "kernel_source": "moe_torch_grouped_mm" if grouped_mm else "moe_torch_loop",
               "moe_dtype": LABELS[dtype], **{k_: c[k_] for k_ in ("num_tokens", "hidden_size", "inter_size",
                                                                      "topk", "num_experts", "moe_tp_size",
                                                                      "moe_ep_size")},
               "distribution": "balanced"}
        pairs = -(-t * topk // ep)
        weights = local * 3 * hid * f * 2

        def setup(t=t, hid=hid, topk=topk, e=e, local=local, f=f):
            # balanced routing: token i's j-th choice is expert (i * topk + j) mod e (distinct for topk <= e);
            # this GPU holds experts [0, local) (one EP shard of a tp x ep grid) and computes their pairs only
            choice = [(i, (i * topk + j) % e) for i in range(t) for j in range(topk)]
            mine = [(i, x) for i, x in choice if x < local]
            counts = [0] * local
            for _, x in mine:
                counts[x] += 1
            tok = torch.tensor([i for i, _ in mine], device=device, dtype=torch.long)
            eid = torch.tensor([x for _, x in mine], device=device, dtype=torch.long)
            gate = torch.full((len(mine),), 1.0 / topk, device=device, dtype=torch.bfloat16)
            x_in = _uniform(torch, (t, hid), device, torch.bfloat16)
            w_up = _uniform(torch, (local, 2 * f, hid), device, torch.bfloat16, 1.0 / math.sqrt(hid))
            w_down = _uniform(torch, (local, hid, f), device, torch.bfloat16, 1.0 / math.sqrt(f))
            out = torch.zeros((t, hid), device=device, dtype=torch.bfloat16)
            bounds, acc = [], 0
            for n_ in counts:
                bounds.append((acc, acc + n_))
                acc += n_
            offs = torch.tensor([b_ for _, b_ in bounds], device=device, dtype=torch.int32)

            def grouped(a, w):
                if grouped_mm:
                    return torch._grouped_mm(a, w.transpose(-2, -1), offs=offs)
                return torch.cat([a[lo:hi] @ w[x].t() for x, (lo, hi) in enumerate(bounds) if hi > lo]
                                 or [a.new_zeros((0, w.shape[1]))])

            def moe():
                order = torch.argsort(eid, stable=True)                      # permute pairs by expert
                rows, g = tok[order], gate[order]
                h1 = grouped(x_in.index_select(0, rows), w_up)              # [pairs, 2f]
                act = F.silu(h1[:, :f]) * h1[:, f:]                          # SwiGLU
                y = grouped(act, w_down) * g[:, None]                        # [pairs, hid]
                out.zero_()
                return out.index_add_(0, rows, y)                            # combine

            return moe

        yield row, weights + t * hid * 4 + pairs * (2 * hid + 3 * f) * 2 * 2, setup


# ------------------------------------------------------------------ collectives

_DIST_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "int8": "int8"}


def _collective_row(torch, dist, dev, bench, d, cfg, world, budget):
    """(row, 0) for a message every rank can send, else (None, 1): skipped (same decision on every rank)."""
    size = cfg["message_size"] - cfg["message_size"] % world   # all_to_all_single splits the buffer evenly
    eb = 1 if d == "int8" else 2
    if size <= 0 or 2 * size * eb > budget:
        return None, 1
    backend = dist.get_backend()
    return {"op_name": COLLECTIVES[bench], "kernel_source": "NCCL" if backend == "nccl" else backend,
            "nccl_dtype": LABELS[d], "num_gpus": world, "message_size": size}, 0


def _time_collective(torch, dist, dev, bench, d, size, timer: Timer) -> float:
    dt = getattr(torch, _DIST_DTYPES[d])
    send = torch.zeros(size, device=dev, dtype=dt)
    if bench == "allreduce":
        fn = lambda: dist.all_reduce(send)   # noqa: E731
    else:
        recv = torch.empty_like(send)
        fn = lambda: dist.all_to_all_single(recv, send)   # noqa: E731
    dist.barrier()
    local = timer(fn, graphs=False)
    worst = torch.tensor([local], dtype=torch.float64, device=dev)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)   # a collective is as slow as its slowest rank
    return float(worst.item())
