"""The Cython modules of the per-tick reader; ``oomd._fastcg`` is their face (docs/design.md,
"Reading"). Nothing here is imported from Python except through ``oomd._fastcg``."""
