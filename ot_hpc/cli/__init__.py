"""Command-line entry points (the small scripts in bin/ call ``main()`` here)."""
