"""The steps each function runs, written against ``videodb_retry.ports``: the handlers wire
adapters into them. A step imports rules and the top-level modules, never an adapter."""
