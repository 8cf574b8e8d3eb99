"""Analysis: estimators, laws, forecasts, ceilings, costs. Pure functions on arrays."""
