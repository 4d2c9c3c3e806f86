"""The steps: prepare -> tokenization -> training -> evaluation. Each takes a typed Recipe."""
