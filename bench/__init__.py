"""The project's own benchmarks (DESIGN.md §9); each prints its figure beside a bare baseline."""
