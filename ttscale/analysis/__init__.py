"""Analysis (stage 4): every number ttscale reports, from counts and summaries, with intervals.

Reads summaries, verdicts and counts tables; writes ``analysis/`` (curves, fits, figures) and
``compare/``. Split by the question each package answers: ``curves/`` (unbiased pass@k, maj@k,
best-of-k, per-verifier curves), ``laws/`` (power-law fits and their judgement), ``forecasting/``
(forecasts, difficulty models, what-if simulation), ``temperatures/``, ``costs/`` (FLOPs, Kinetics
eFLOPs), ``ceilings/`` (false-positive ceilings, optimal k) and ``adaptive/`` (estimators for
adaptively sampled runs). ``pipeline`` and ``compare`` drive them over a run, ``results`` holds what
the verbs return, ``figures`` draws. Imports the stages below it, never the report or above.
"""
