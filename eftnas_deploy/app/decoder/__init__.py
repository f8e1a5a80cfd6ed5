"""The decoder-LLM run (`eftnas-deploy decoder`): text → elastic causal LM → stateful OpenVINO IR."""
