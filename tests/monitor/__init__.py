"""Tests of the monitoring commands (issue 5)."""
