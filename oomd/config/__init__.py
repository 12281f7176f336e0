"""Config handling in two stages, as oomd does: JSON -> plain IR (parser), IR -> engine (compiler)."""
