"""The repository layer: every SQL query lives here, behind functions that speak domain objects."""
