"""Analysis, forecasts and what-if: coverage at a larger K from few samples (power law, Beta
difficulty models), their intervals and law verdicts, and simulation of other K, verifiers, costs.
"""
