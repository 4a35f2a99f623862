"""The nightly consistency check: every cached balance and stock counter against the rows
it summarises. It reports what it finds to the owners and never corrects anything."""
