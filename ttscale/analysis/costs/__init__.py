"""Analysis, cost: tokens, Monkeys-style FLOPs and Kinetics eFLOPs (with the KV-cache memory term),
and the model shapes they need.
"""
