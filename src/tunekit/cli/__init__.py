"""The command line. Modules here import only typer, rich and tunekit's light modules at top
level; the heavy libraries load inside the command functions (tests/cli/test_imports.py)."""
