"""Fails on a first attempt and passes on a retry, to show retries."""

import os


def test_passes_on_retry():
    assert int(os.environ.get("TESTLAYER_ATTEMPT", "1")) > 1, "first attempt fails on purpose"
