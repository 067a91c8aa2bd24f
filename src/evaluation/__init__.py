"""What a test leaves behind: metrics files, per-class tables and figures."""
