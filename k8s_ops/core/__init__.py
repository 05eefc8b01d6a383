"""The shared core: commands and secrets as data, plans, the runner and executor, facts, waits, errors,
files, paths, settings, audit log, prompts, tool preflight and the test fake."""
