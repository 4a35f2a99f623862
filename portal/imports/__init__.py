"""Excel templates, import runs and their failed rows, and exports (`xlsx`): shared by the
domains that import or export lists (gift card numbers today)."""
