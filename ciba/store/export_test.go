package store

// Prefix returns the key prefix (tests open a second node on it).
func (db *DB) Prefix() string { return db.prefix }
