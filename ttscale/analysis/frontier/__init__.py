"""Analysis, the compute-optimal frontier of a run: which configuration (model, temperature, budget,
selection, verifier) and k is best at each cost, how sure that is, where the next unit of compute
should go, and what per-difficulty allocation gains.

Modules by question: :mod:`~ttscale.analysis.frontier.configs` (configurations, their accuracy
over k and their cost over k), :mod:`~ttscale.analysis.frontier.band` (the frontier, its paired
bootstrap band and the configurations not significantly worse), :mod:`~ttscale.analysis.frontier.moves`
(the next move), :mod:`~ttscale.analysis.frontier.allocation` (per-difficulty allocation,
cross-fitted), :mod:`~ttscale.analysis.frontier.result` (the result, its figure and files).
"""
