"""Stage package: eval."""
