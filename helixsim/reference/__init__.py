"""Functional numpy references for Helix parallelism (Bhatia et al., arXiv 2507.07120).

Modules:
    helix_attention -- round-robin KV sharding, local attention, all-to-all, LSE combine
                       (paper §2.1-2.3; TensorRT-LLM Helix blog and helixKernels.cu).
    hopb            -- HOP-B batch-wise overlap schedule (paper §2.1.3, Fig. 3).
    (the all-to-all volume formula lives in helixsim.cost.terms.helix_a2a_send_bytes)

These are slow, exact, readable references used to check the analytical cost model,
not performance code.
"""
