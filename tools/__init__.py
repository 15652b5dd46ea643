"""The repository's own tools that sit above the products and the launcher (run from the checkout, not installed)."""
