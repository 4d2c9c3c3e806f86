"""Inference on raw inputs for every task: tunekit predict and tunekit serve."""
