"""One vLLM engine on SmolLM2 for the whole run of the vLLM tests (`make test-vllm`): its start-up is most of
their time. Shut down at the end, so that no engine process is left behind."""

import gc

import pytest


@pytest.fixture(scope="session")
def engine(smollm2):
    from laser_rl.generation import load_vllm

    llm = load_vllm(str(smollm2), seed=0)
    yield llm
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
