"""Stage package: prep."""
