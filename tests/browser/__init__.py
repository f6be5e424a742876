"""Browser tests: a package, so that its stack lives only while they run."""
