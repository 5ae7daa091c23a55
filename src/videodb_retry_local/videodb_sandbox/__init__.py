"""The VideoDB sandbox: a stand-in for the VideoDB API on 127.0.0.1 (answers, downloads,
the collection's population, scripted faults)."""
