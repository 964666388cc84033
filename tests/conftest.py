"""Test setup shared by every test: no test may ever reach a real AWS endpoint."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Dummy credentials and a fixed region before anything imports boto3, and no
# profile or endpoint from the developer's shell.
for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
             "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"

# The tests' own references write and read integers of any size (str(10**5000)); the
# product leaves CPython's 4300-digit limit in force (worker_src/json_text.py converts
# long integers itself), and tests/test_json_text.py checks it under that limit.
sys.set_int_max_str_digits(0)


def pytest_collection_modifyitems(items: list) -> None:
    """Modules that hold slow (end-to-end) tests run first, each module's tests in their order:
    with `pytest -n 2` the quick unit tests then fill the end, and both processes finish
    together instead of one waiting on a last long test."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow_modules)
