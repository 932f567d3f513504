"""SQLite storage: the connection, the migration runner and one repository module per aggregate."""
