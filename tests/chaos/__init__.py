"""Chaos tests: real processes, SIGKILLs and server restarts (see ``run_chaos``)."""
