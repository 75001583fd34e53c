"""Offline replay of routing policies on per-task x per-model outcome tables (`modelyard bench replay`).

A table has one row per (task, model) with the outcome and its cost, so every policy's choice can be
scored counterfactually. `table` loads it, `catalog` builds the router's cold-start catalog from list
prices only, `baselines` computes the reference policies, `runner` replays modelyard itself (in
process or against a live server), `drift` degrades a model halfway, `report` prints and plots.
"""
