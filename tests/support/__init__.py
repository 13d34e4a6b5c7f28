"""Test support: the float64 reference, model builders, crafted hostile files and sandboxes."""
