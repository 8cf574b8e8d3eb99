"""Analysis, temperature: which temperature is best (p_best, the gap's interval), the best
split of samples across temperatures, and whether that split beats the best temperature alone
(its cross-fitted gain with an interval: gain.py).
"""
