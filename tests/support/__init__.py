"""Helpers the tests share: building packets and capture files, scenes, tshark, the report.json schema.

Test modules import what they share from here and never from one another (tests/test_suite_layout.py holds
that). `tests/` is on sys.path (`pythonpath` in pyproject's [tool.pytest.ini_options]), so `from support import
packets` works in every test module and in conftest.py. Nothing here is a test: pytest collects no module of
this package, and the tier markers conftest.py sets go by the test module's file name, never by these.
"""
