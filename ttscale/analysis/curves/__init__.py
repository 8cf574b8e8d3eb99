"""Analysis, curves: unbiased pass@k / coverage, maj@k, best-of-k and weighted vote, estimated
from all n samples, per verifier, with intervals. Pure functions on counts and arrays.
"""
