"""The test suite (a package, so that ``tests.fixtures`` and ``tests.conftest`` import by name)."""
