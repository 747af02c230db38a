"""Root pytest glue: load the UPS harness plugin when it is not installed as an entry point (e.g. plain checkout)."""

import sys

if "ups.harness.plugin" not in sys.modules:
    pytest_plugins = ["ups.harness.plugin"]
