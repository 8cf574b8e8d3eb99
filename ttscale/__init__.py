"""ttscale: a test-time compute scaling simulator.

Sample K completions per problem (vLLM, transformers, OpenAI-compatible servers, or the embedded
model), verify them with pluggable verifiers, and turn the verdicts into unbiased scaling curves,
fitted laws, forecasts, ceilings and costs. Every stage reads and writes one run directory.
"""

__version__ = "0.1.0"
