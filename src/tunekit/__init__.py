"""tunekit: a YAML recipe in, a fine-tuned, evaluated model out.

Only the version lives here: importing tunekit must stay cheap (see tests/cli/test_imports.py).
"""

__version__ = "0.1.0"
