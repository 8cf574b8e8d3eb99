"""Analysis, temperature: which temperature is best (p_best, the gap's interval) and the best
split of samples across temperatures.
"""
