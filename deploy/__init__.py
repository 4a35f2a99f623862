"""Running Tessera as in production: `make serve`, and the files docs/operations.md uses."""
