"""Optimisation passes, one file each: functions from Module to Module. levels.py lists the
passes of each -O level in order and runs them (`optimize`)."""
