"""Member data rights: a copy of everything we hold, and closing the account."""
