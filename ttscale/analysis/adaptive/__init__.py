"""Analysis, adaptively sampled runs: exactly unbiased estimators under the stopping rule, the
rule's planning aid, and an adaptive run's counts.
"""
