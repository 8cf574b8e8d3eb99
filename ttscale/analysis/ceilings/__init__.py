"""Analysis, imperfect verifiers: false-positive ceilings and the optimal k when a false positive
costs something (Inference Scaling fLaws), with intervals.
"""
