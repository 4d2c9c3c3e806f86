"""Recipes: the typed schema and the loader. Never imports torch or the HF libraries."""

from tunekit.recipe.loader import dump_recipe, load_recipe
from tunekit.recipe.schema import Recipe

__all__ = ["Recipe", "dump_recipe", "load_recipe"]
