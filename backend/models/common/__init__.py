"""Parts every model family shares: the subject cut-out, dtype names, CUDA out-of-memory
mapping, CUDA-graph replay, diffusers step reporting, and progress folding for nested models."""
