"""Users, password hashes, sessions, API tokens and role guards."""
