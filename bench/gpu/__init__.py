"""The GPU check: everything issue 14 measures on a GPU, prepared here and run there in one call (README.md)."""
