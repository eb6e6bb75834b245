"""Attention computed a block of queries at a time with plain batched matmuls: for bf16
inference on CPUs whose fused attention gains nothing from bf16.

PyTorch's CPU flash attention runs its bf16 matmuls on AMX tiles where the CPU has them; on a CPU
with AVX512-BF16 but no AMX it runs no faster in bf16 than in fp32 (0.19 s a layer of 3,301
tokens, 12 heads, on an AMD EPYC Zen 4). oneDNN's bf16 ``bmm`` there is 3–5× its fp32 one, so
``softmax(QKᵀ/√d + bias) V`` for 64 queries at a time — the block's (heads, 64, L) scores stay in
cache — takes half the flash kernel's time. The scores are rounded to bf16 between the matmul
and the softmax (the flash kernel keeps them in fp32); ``ditod.modeling.precision`` measures
both kernels at start and keeps the faster, and ``benchmarks/precision.py`` what it costs in AP.
"""

import torch

__all__ = ["DEFAULT_QUERY_BLOCK", "blocked_attention"]

# queries per block: the fastest of 32–1024 on the Zen 4 above (64: 91 ms, 256: 138 ms a layer)
DEFAULT_QUERY_BLOCK = 64


def blocked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_bias: torch.Tensor | None = None,
    block: int = DEFAULT_QUERY_BLOCK,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """``dropout(softmax(query keyᵀ / √d + attn_bias)) value``, ``block`` queries at a time.

    ``query``, ``key``, ``value``: (B, heads, L, d). ``attn_bias``: additive (float) or
    keep-mask (bool, True = attend), broadcastable to (B, heads, L, L). Returns (B, heads, L, d)
    in the inputs' dtype, what ``F.scaled_dot_product_attention`` gives (without dropout: the
    same numbers); differentiable.
    """
    batch, heads, length, dim = query.shape
    if attn_bias is not None and attn_bias.dtype == torch.bool:
        keep = attn_bias
        attn_bias = torch.zeros(keep.shape, dtype=query.dtype, device=query.device)
        attn_bias.masked_fill_(~keep, torch.finfo(query.dtype).min)
    if attn_bias is not None:
        attn_bias = attn_bias.to(query.dtype)
        # (B·heads, 1 or L, L); a view for the encoder's (B, heads, L, L) bias
        attn_bias = attn_bias.expand(batch, heads, -1, -1).reshape(
            batch * heads, attn_bias.shape[-2], length
        )
    query = (query * dim**-0.5).reshape(batch * heads, length, dim)
    key_t = key.reshape(batch * heads, length, dim).transpose(1, 2).contiguous()
    value = value.reshape(batch * heads, length, dim)
    blocks = []
    for start in range(0, length, block):
        rows = slice(start, start + block)
        if attn_bias is None:
            scores = torch.bmm(query[:, rows], key_t)
        else:
            bias = attn_bias if attn_bias.shape[1] == 1 else attn_bias[:, rows]
            scores = torch.baddbmm(bias, query[:, rows], key_t)
        probs = scores.softmax(-1)
        if dropout_p:
            probs = torch.nn.functional.dropout(probs, dropout_p)
        blocks.append(torch.bmm(probs, value))
    return torch.cat(blocks, dim=1).view(batch, heads, length, dim)
