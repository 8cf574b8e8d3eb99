"""Analysis, laws: the exponentiated power law (coverage = exp(a k^b)), its bootstrap,
distributional alternatives and the verdict on whether a law fits the measured range.
"""
