"""`malmungchi experiment`: choices trained and scored side by side on one split."""
