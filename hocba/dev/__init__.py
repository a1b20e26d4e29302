"""Stand-ins for what a real deployment gets from outside: the bundled Sở portal,
the test PKI and the demo district. Never used by production code paths."""
