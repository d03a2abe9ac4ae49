"""transcribe."""
